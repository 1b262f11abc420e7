"""`ingest.NewAlert` is the row of an alert a batch fires, inserted by Core with the batch's others:
it names AlertRow's columns itself. When a column is added to `alerts`, this says whether a new
alert must set it (add it to NewAlert) or it is one that only later actions set."""

from __future__ import annotations

import dataclasses

from monitor.alerting.ingest import NewAlert
from monitor.store.tables import AlertRow

#: Set only after an alert fired: by an ack, a silence or inhibition, an escalation.
SET_LATER = {"acked_at", "acked_by", "muted_by", "escalated_at"}


def test_a_new_alert_names_every_column_but_those_set_later():
    columns = set(AlertRow.__table__.columns.keys())
    fields = {field.name for field in dataclasses.fields(NewAlert)}
    assert fields <= columns, f"NewAlert fields that are not columns of alerts: {sorted(fields - columns)}"
    assert columns - fields == SET_LATER, (
        f"columns of alerts a new alert does not set: {sorted(columns - fields)}; "
        "add the new one to NewAlert (and to its construction in ingest._Batch._fire), or to SET_LATER if only a later action sets it"
    )
