from workers.management.queue_action import QueueActionCommand


class Command(QueueActionCommand):
    help = "Pause a queue: its orders stay queued and are not claimed; running ones finish."
    action = "pause"
