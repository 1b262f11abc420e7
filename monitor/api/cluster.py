"""GET /api/v1/cluster: which replica answers, which replicas are alive and who polls what.

What an operator asks when replicas share one PostgreSQL ("is anyone polling airflow-prod?",
"did the survivor take over?"); read straight from the lease rows the replicas decide by.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from monitor.api.deps import session
from monitor.store import leases

router = APIRouter(prefix="/api/v1/cluster", tags=["cluster"])


class LeaseView(BaseModel):
    holder: str = Field(description="The replica holding it.")
    expires_at: datetime = Field(description="Until when, unless renewed; past it another replica may take it.")
    acquired_at: datetime = Field(description="When this holder took it.")
    expired: bool


class SourceLeaseView(LeaseView):
    source: str


class ReplicaView(LeaseView):
    """A replica's presence is a lease it holds on itself, renewed by its heartbeat."""

    replica: str


class ClusterView(BaseModel):
    replica: str = Field(description="The replica that answered this request.")
    now: datetime = Field(description="The database's clock, which every expiry is measured by.")
    replicas: list[ReplicaView]
    sources: list[SourceLeaseView] = Field(
        description="Sources whose lease some replica holds or held; a source with no row has never been taken."
    )


@router.get("", response_model=ClusterView)
def cluster(db: Session = Depends(session)) -> ClusterView:
    now = leases.database_now(db)
    replicas: list[ReplicaView] = []
    sources: list[SourceLeaseView] = []
    for held in leases.holdings(db):
        common = {"holder": held.holder, "expires_at": held.expires_at, "acquired_at": held.acquired_at, "expired": held.expires_at < now}
        if held.name.startswith(leases.REPLICA):
            replicas.append(ReplicaView(replica=held.name.removeprefix(leases.REPLICA), **common))
        elif held.name.startswith(leases.SOURCE):
            sources.append(SourceLeaseView(source=held.name.removeprefix(leases.SOURCE), **common))
    return ClusterView(replica=leases.replica_id(), now=now, replicas=replicas, sources=sources)
