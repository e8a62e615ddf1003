"""The shop's own table, written by the ORM inside a transactional activity.

It lives in the test's app schema (dropped with it afterwards): ``db_table``
names it schema-qualified, which Django's PostgreSQL backend quotes as given.
"""

from __future__ import annotations

import os

from django.db import models

from hotmesh_sync.memflow import schema_for


class Reservation(models.Model):  # type: ignore[misc,unused-ignore]
    order_id = models.CharField(max_length=64)
    qty = models.IntegerField()

    class Meta:
        app_label = "e2e_shop"
        db_table = f'{schema_for(os.environ["E2E_SHOP_APP_ID"])}"."reservation'
