"""a run is (source, pipeline, run_id): Airflow run ids are unique only within a DAG

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_source_run_id", type_="unique")
        batch_op.create_unique_constraint("uq_runs_source_pipeline_run", ["source", "pipeline", "run_id"])
    with op.batch_alter_table("tracked_runs", schema=None) as batch_op:
        batch_op.drop_constraint("pk_tracked_runs", type_="primary")
        batch_op.create_primary_key("pk_tracked_runs", ["source", "pipeline", "run_id"])


def downgrade() -> None:
    with op.batch_alter_table("tracked_runs", schema=None) as batch_op:
        batch_op.drop_constraint("pk_tracked_runs", type_="primary")
        batch_op.create_primary_key("pk_tracked_runs", ["source", "run_id"])
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_source_pipeline_run", type_="unique")
        batch_op.create_unique_constraint("uq_runs_source_run_id", ["source", "run_id"])
