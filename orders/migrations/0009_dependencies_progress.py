"""Orders that wait for others (Dependency, Sequence, status waiting) and the progress a
handler reports."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0008_limits'),
    ]

    operations = [
        migrations.CreateModel(
            name='Dependency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('policy', models.CharField(choices=[('cancel', 'Cancel'), ('always', 'Always')], default='cancel', max_length=10)),
            ],
        ),
        migrations.CreateModel(
            name='Sequence',
            fields=[
                ('key', models.CharField(max_length=400, primary_key=True, serialize=False)),
                ('last_order_id', models.UUIDField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='order',
            name='order_status_valid',
        ),
        migrations.AddField(
            model_name='order',
            name='has_dependents',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='order',
            name='progress_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='order',
            name='progress_note',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='order',
            name='progress_value',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='order',
            name='waiting_for',
            field=models.IntegerField(default=0),
        ),
        migrations.AlterField(
            model_name='order',
            name='status',
            field=models.CharField(choices=[('waiting', 'Waiting'), ('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('dead', 'Dead'), ('expired', 'Expired'), ('cancelled', 'Cancelled')], default='queued', max_length=10),
        ),
        migrations.AlterField(
            model_name='prunedtally',
            name='status',
            field=models.CharField(choices=[('waiting', 'Waiting'), ('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('dead', 'Dead'), ('expired', 'Expired'), ('cancelled', 'Cancelled')], max_length=10),
        ),
        migrations.AddConstraint(
            model_name='order',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['waiting', 'queued', 'running', 'done', 'dead', 'expired', 'cancelled'])), name='order_status_valid'),
        ),
        migrations.AddField(
            model_name='dependency',
            name='on',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='+', to='orders.order'),
        ),
        migrations.AddField(
            model_name='dependency',
            name='waiting',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='+', to='orders.order'),
        ),
        migrations.AddConstraint(
            model_name='dependency',
            constraint=models.UniqueConstraint(fields=('waiting', 'on'), name='dependency_once'),
        ),
    ]
