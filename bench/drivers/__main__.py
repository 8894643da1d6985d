"""Run one client-side job of one queue, inside that queue's own virtualenv:

    python -m bench.drivers QUEUE COMMAND [--n N] [...]

QUEUE is a module bench/drivers/QUEUE_driver.py; its COMMANDS name what it can do.
Importing it as a module (not running it as __main__) keeps the task names that the
workers import stable."""

import importlib

from bench.drivers.common import parser

args = parser(__doc__.splitlines()[0]).parse_args()
driver = importlib.import_module(f"bench.drivers.{args.queue}_driver")
if args.command not in driver.COMMANDS:
    raise SystemExit(f"{args.queue} cannot {args.command!r}; it can {', '.join(driver.COMMANDS)}")
driver.COMMANDS[args.command](args)
