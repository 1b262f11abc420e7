"""runs by pipeline, state and end: /metrics reads each pipeline's newest successful runs by
index seeks, not by a pass over every run stored

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_pipeline_state_ended", "runs", ["source", "pipeline", "state", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_pipeline_state_ended", table_name="runs")
