"""One index for the statuses that are few (waiting, dead, expired, cancelled) instead of
one for every status: each order no longer writes an entry there when it is placed,
claimed and done. Building it reads the table once."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0011_schedules'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='order',
            name='order_status_recent_idx',
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(condition=models.Q(('status__in', ['waiting', 'dead', 'expired', 'cancelled'])), fields=['status', '-id'], name='order_uncommon_status_idx'),
        ),
    ]
