"""pizzaq's apps in a Django project of someone else's: the wheel, installed into a fresh
virtualenv beside a project made by `django-admin startproject shop`."""

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import psycopg
import pytest

from tests.conftest import ROOT, database_url, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.system]

SHOP_SETTINGS = """
INSTALLED_APPS += ["workers", "orders"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": %(name)r, "USER": "postgres",
                         "HOST": %(host)r, "PORT": %(port)r}}
TASKS = {"default": {"BACKEND": "orders.tasks_backend.PizzaqBackend"}}
PIZZAQ = {"heartbeat_interval": 0.5, "poll_interval": 0.2}
"""
SHOP_URLS = """
from django.urls import include
urlpatterns += [path("api/", include("orders.urls"))]
"""
SHOP_TASKS = """
from django.tasks import task


@task()
def add(a, b):
    return a + b
"""


def run(argv: list, cwd, **env) -> str:
    result = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def shop_database():
    """A fresh, empty PostgreSQL database for the shop, dropped afterwards."""
    name = f"pizzaq_shop_{os.getpid()}"
    server = database_url().rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_wheel(out) -> str:
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)], out)
    [wheel] = out.glob("pizzaq-*.whl")
    return str(wheel)


def fresh_venv(path, wheel: str) -> str:
    """A virtualenv with the wheel installed; the packages it depends on are lent from this
    one's site-packages (a path, so none of this checkout's own modules come along)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = str(path / "bin" / "python")
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path).strip()
    (path / site.split(str(path) + "/", 1)[1] / "lent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel], path)
    return python


def test_the_wheel_runs_tasks_in_a_project_of_its_own(tmp_path, shop_database):
    wheel = build_wheel(tmp_path)
    assert {"orders/migrations/0001_initial.py", "workers/management/commands/runworker.py"} <= set(
        zipfile.ZipFile(wheel).namelist()), "the apps, their migrations and commands are in the wheel"
    python = fresh_venv(tmp_path / "venv", wheel)
    run([python, "-m", "django", "startproject", "shop", str(tmp_path / "shop")], tmp_path)
    shop = tmp_path / "shop"
    params = psycopg.conninfo.conninfo_to_dict(database_url())
    with open(shop / "shop" / "settings.py", "a") as settings:
        settings.write(SHOP_SETTINGS % {"name": shop_database, "host": params.get("host", "127.0.0.1"),
                                        "port": str(params.get("port", 5432))})
    with open(shop / "shop" / "urls.py", "a") as urls:
        urls.write(SHOP_URLS)
    (shop / "shop" / "tasks.py").write_text(SHOP_TASKS)
    # Nothing of this checkout on the path: the shop gets pizzaq from the wheel alone.
    clean = {"PYTHONPATH": "", "DJANGO_SETTINGS_MODULE": "shop.settings", "DATABASE_URL": "", "PIZZAQ_HANDLER_MODULES": ""}
    manage = [python, "manage.py"]
    shell = [*manage, "shell", "--verbosity", "0", "--command"]
    run([*manage, "migrate", "--noinput"], shop, **clean)

    enqueued = run([*shell, "from shop.tasks import add; print(add.enqueue(2, 3).id)"], shop, **clean)
    processes = [subprocess.Popen([*manage, *args], cwd=shop, env={**os.environ, **clean},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for args in (["runworker", "--name", "W1"], ["notifier"])]
    try:
        result = f"from shop.tasks import add; r = add.get_result({enqueued.strip()!r}); print(r.status, r.return_value if r.is_finished else '')"
        wait_for(lambda: run([*shell, result], shop, **clean).split() == ["SUCCESSFUL", "5"],
                 timeout=60, interval=0.5, message="the shop's task to succeed")
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
    origin = run([*shell, "import orders; print(orders.__file__)"], shop, **clean)
    assert origin.startswith(str(tmp_path / "venv")) and "site-packages" in origin, "from the wheel, not this checkout"
    refused = run([*shell, textwrap.dedent("""
        from orders.services import OrderRejected, place_order
        try:
            place_order("bake")
        except OrderRejected as error:
            print(error.code)""")], shop, **clean)
    assert refused.strip() == "unknown_kind", "the demo's kinds are not on in someone else's project"
