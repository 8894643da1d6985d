"""Progress bars for long commands, drawn on stderr so stdout stays a clean summary."""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar() -> Progress:
    """``with progress_bar() as bar: task = bar.add_task("placing", total=n); bar.advance(task, k)``."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True),
    )
