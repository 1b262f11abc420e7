"""GET/POST/DELETE /api/v1/silences: mute matching alerts for a while (maintenance windows)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import Session

from monitor.alerting import verbs
from monitor.api.auth import Caller, require
from monitor.api.deps import RowId, session
from monitor.config import RouteSettings, parse_duration
from monitor.model import Text, Timestamp, utcnow
from monitor.store import silences as silence_store
from monitor.store.tables import SilenceRow
from monitor.store.tokens import Permission

router = APIRouter(prefix="/api/v1/silences", tags=["silences"])


class SilenceIn(BaseModel):
    """Unknown keys are refused: a misspelt `ends_at` must not become a silence of another length."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, str] = Field(
        min_length=1,
        max_length=32,
        description="As in routes: 'x', '=x', '!x', '~regex', '!~regex' on tier, kind, source, pipeline, task, labels.",
    )
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    duration: str | None = Field(
        None, max_length=50, description=f"Instead of ends_at: e.g. 2h, 30m; at most {verbs.MAX_SILENCE.days} days."
    )
    comment: Text = Field("", max_length=2000)

    @field_validator("matchers")
    @classmethod
    def _valid(cls, matchers: dict[str, str]) -> dict[str, str]:
        return RouteSettings(match=matchers).match

    @field_validator("duration")
    @classmethod
    def _bounded(cls, duration: str | None) -> str | None:
        if duration is not None and parse_duration(duration) > verbs.MAX_SILENCE:
            raise ValueError(f"a silence lasts at most {verbs.MAX_SILENCE.days} days")
        return duration

    @model_validator(mode="after")
    def _window(self) -> "SilenceIn":
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give exactly one of ends_at or duration")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        starts = self.starts_at or now
        return starts, self.ends_at or starts + parse_duration(self.duration)


class SilenceOut(BaseModel):
    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    status: str


def _out(row: SilenceRow, now: datetime) -> SilenceOut:
    return SilenceOut(
        id=row.id,
        matchers=row.matchers,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
        created_at=row.created_at,
        status=silence_store.status(row, now),
    )


@router.get("", response_model=list[SilenceOut])
def list_silences(include_expired: bool = False, db: Session = Depends(session)) -> list[SilenceOut]:
    now = utcnow()
    return [_out(r, now) for r in silence_store.get_all(db, include_expired=include_expired, now=now)]


@router.post("", response_model=SilenceOut, status_code=201)
def create_silence(
    body: SilenceIn, who: Caller = Depends(require(Permission.ACT, "silence")), db: Session = Depends(session)
) -> SilenceOut:
    now = utcnow()
    starts, ends = body.window(now)
    row = verbs.silence(db, matchers=body.matchers, starts_at=starts, ends_at=ends, who=who.name, comment=body.comment, now=now)
    db.flush()  # the row's id, for its audit entry
    who.record(db, target=f"silence #{row.id}", detail=f"{body.matchers} until {ends.isoformat()}", now=now)
    return _out(row, now)


@router.delete("/{silence_id}", response_model=SilenceOut)
def expire_silence(
    silence_id: RowId, who: Caller = Depends(require(Permission.ACT, "expire_silence")), db: Session = Depends(session)
) -> SilenceOut:
    now = utcnow()
    row = verbs.expire(db, silence_id=silence_id, now=now)
    who.record(db, target=f"silence #{silence_id}", now=now)
    return _out(row, now)
