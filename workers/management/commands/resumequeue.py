from workers.management.queue_action import QueueActionCommand


class Command(QueueActionCommand):
    help = "Resume a paused queue: its orders are claimed again at once."
    action = "resume"
