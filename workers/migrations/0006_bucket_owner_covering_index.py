"""A worker's bucket numbers come from one index, (owner, number), read alone; it replaces
the index on owner."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0005_heartbeat_autovacuum'),
    ]

    operations = [
        migrations.AlterField(
            model_name='bucket',
            name='owner',
            field=models.CharField(blank=True, default='', max_length=100),
        ),
        migrations.AddIndex(
            model_name='bucket',
            index=models.Index(fields=['owner', 'number'], name='bucket_owner_idx'),
        ),
    ]
