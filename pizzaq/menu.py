"""Demo handlers that tell the pizza-shop story."""

import random
import time

from orders.handlers import handler

RESOLUTIONS = ("144p", "720p", "1080p")


def _seconds(order, default: float) -> float:
    return float(order.payload.get("seconds", default))


def _work(order, seconds: float, doing: str) -> bool:
    """Take ``seconds``, reporting progress as it goes (the dashboard's bars); False if the
    order was cancelled meanwhile."""
    done_at = time.monotonic() + seconds
    while (left := done_at - time.monotonic()) > 0:
        if order.cancel_requested():
            return False
        order.progress(1 - left / seconds, f"{doing}, {left:.0f} s to go")
        time.sleep(min(left, 0.1))
    return True


@handler("bake", timeout=60)
def bake(order):
    """Bake a pizza: takes payload["seconds"] (3 by default). A bake over a minute is a
    stuck oven: its lease lapses and the order is baked again by another run (in the
    shop its bucket belongs to, if that shop has a free oven). A cancelled bake stops."""
    if not _work(order, _seconds(order, 3), "in the oven"):
        return {"stopped": "cancelled"}
    return {"baked": order.payload.get("pizza", "margherita")}


@handler("noop")
def noop(order):
    """Do nothing; the benchmarks' order."""
    return None


@handler("deliver")
def deliver(order):
    """Drive a pizza to payload["address"]."""
    time.sleep(_seconds(order, 1))
    return {"delivered_to": order.payload.get("address", "the counter")}


@handler("upload", atomic=True)
def upload(order):
    """One video upload fans out into a transcoding order per resolution, which run in
    parallel, and fans in: a publish order waits for all of them. Atomic: the group
    commits with this order's completion, so a retried upload never places it twice."""
    from orders.services import OrderSpec, place_group

    video = order.payload.get("video", "upload.mp4")
    seconds = order.payload.get("seconds", 2)
    group = place_group(
        [OrderSpec("transcode", {"video": video, "resolution": resolution, "seconds": seconds})
         for resolution in RESOLUTIONS],
        then=OrderSpec("publish", {"video": video}),
    )
    return {"transcodes": [str(child.id) for child in group.children], "publish": str(group.callback.id)}


@handler("publish")
def publish(order):
    """Publish a video once every transcode of it is done: placed by ``upload``, waiting
    for them."""
    from orders.dependencies import waits_for

    resolutions = sorted(done.payload.get("resolution", "") for done in waits_for(order.pk).only("payload"))
    return {"published": order.payload.get("video"), "resolutions": resolutions}


@handler("transcode")
def transcode(order):
    """Transcode one video to payload["resolution"]; a cancelled transcode stops."""
    resolution = order.payload.get("resolution")
    if not _work(order, _seconds(order, 2), f"transcoding to {resolution}"):
        return {"stopped": "cancelled"}
    return {"video": order.payload.get("video"), "resolution": resolution}


@handler("flaky")
def flaky(order):
    """Fail with probability payload["failure_rate"] (0.5 by default), to show retries."""
    if random.random() < float(order.payload.get("failure_rate", 0.5)):
        raise RuntimeError("the oven flickered")
    return {"ok": True}
