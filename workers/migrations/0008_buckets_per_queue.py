"""Buckets per queue: a bucket row now names the queue whose orders it routes ("" for
every queue no live worker names), and workers record the queues they serve. Bucket rows
are derived state: the table is made anew and the ring of live workers fills it again,
as the next membership change would."""

from django.db import migrations, models
import django.utils.timezone


def assign_buckets_to_live_workers(apps, schema_editor):
    from orders import conf
    from workers.hashring import HashRing

    Worker, Bucket = apps.get_model("workers", "Worker"), apps.get_model("workers", "Bucket")
    ring = HashRing(Worker.objects.filter(status="alive").values_list("name", flat=True))
    if ring.nodes:
        Bucket.objects.bulk_create(
            [Bucket(queue="", number=number, owner=owner) for number, owner in ring.assignments(conf.get().buckets).items()]
        )


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0007_bucket_without_epoch'),
    ]

    operations = [
        migrations.AddField(
            model_name='worker',
            name='queues',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.DeleteModel(name='Bucket'),
        migrations.CreateModel(
            name='Bucket',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('queue', models.CharField(blank=True, default='', max_length=100)),
                ('number', models.IntegerField()),
                ('owner', models.CharField(blank=True, default='', max_length=100)),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['queue', 'number'],
                'indexes': [models.Index(fields=['owner', 'queue', 'number'], name='bucket_owner_idx')],
                'constraints': [models.UniqueConstraint(fields=('number', 'queue'), name='bucket_number_queue')],
            },
        ),
        migrations.RunPython(assign_buckets_to_live_workers, migrations.RunPython.noop),
    ]
