"""Each worker keeps a copy of the every-queue Bucket rows it owns (``territory``), which
a claim reads in one look-up instead of reading the rows; the (owner, queue, number)
index served only that read and goes."""

from django.db import migrations, models


def copy_buckets_to_territories(apps, schema_editor):
    from orders import conf
    from workers.ownership import territories

    Worker, Bucket = apps.get_model("workers", "Worker"), apps.get_model("workers", "Bucket")
    owners = dict(Bucket.objects.filter(queue="").values_list("number", "owner"))
    for name, territory in territories(owners, conf.get().buckets).items():
        Worker.objects.filter(name=name).update(territory=territory)


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0008_buckets_per_queue'),
    ]

    operations = [
        migrations.AddField(
            model_name='worker',
            name='territory',
            field=models.BinaryField(default=bytes, editable=False),
        ),
        migrations.RemoveIndex(model_name='bucket', name='bucket_owner_idx'),
        migrations.RunPython(copy_buckets_to_territories, migrations.RunPython.noop),
    ]
