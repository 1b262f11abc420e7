"""The replay agrees with PyTorch Lightning's own EarlyStopping.

Test-only dependencies (CI installs them, see the report): ``torch==2.13.0`` and
``pytorch-lightning==2.6.6``. No importorskip: this comparison is the reason the
rule can claim Lightning's semantics, so it must run.

1,200 random sequences go through Lightning's decision function
(``EarlyStopping._evaluate_stopping_criteria``, the code its callback runs at every
validation) and through ``replay_early_stopping``; both must stop at the same index
for the same reason, or not stop and end with the same best and wait count.
Values are float64 tensors so both sides compare the same IEEE numbers; sequences
mix a coarse grid (exact ties, exact threshold hits) with continuous values, NaN
and +-inf. A few sequences also go through a real ``Trainer.fit`` end to end.
"""

import math
import random

import pytest
import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from checks.convergence import replay_early_stopping

# Lightning 2.6 on torch 2.13 warns about a torch pytree API it uses; not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*")

REASONS = {
    EarlyStoppingReason.NON_FINITE_METRIC: "non_finite",
    EarlyStoppingReason.STOPPING_THRESHOLD: "stopping_threshold",
    EarlyStoppingReason.DIVERGENCE_THRESHOLD: "divergence_threshold",
    EarlyStoppingReason.PATIENCE_EXHAUSTED: "patience",
}


def random_case(rng: random.Random):
    grid = rng.random() < 0.6
    n = rng.randint(1, 30)
    x = rng.choice([1.0, 2.0, 0.5])
    values = []
    for _ in range(n):
        r = rng.random()
        if r < 0.04:
            values.append(math.nan)
        elif r < 0.06:
            values.append(rng.choice([math.inf, -math.inf]))
        else:
            x += rng.gauss(-0.05, 0.3)
            values.append(round(x * 4) / 4 if grid else x)
    params = dict(
        mode=rng.choice(["min", "max"]),
        min_delta=rng.choice([0.0, 0.0, 0.25, 0.5] if grid else [0.0, rng.uniform(0, 0.3)]),
        patience=rng.randint(0, 5),
        check_finite=rng.random() < 0.8,
        stopping_threshold=rng.choice([None, None, round(rng.uniform(-1, 3) * 4) / 4]),
        divergence_threshold=rng.choice([None, None, round(rng.uniform(0, 4) * 4) / 4]),
    )
    return values, params


def lightning_decision(values, params):
    es = EarlyStopping(monitor="m", **params)
    for i, v in enumerate(values):
        stop, _ = es._evaluate_stopping_criteria(torch.tensor(v, dtype=torch.float64))
        if stop:
            return ("stop", i, REASONS[es.stopping_reason])
    return ("run", float(es.best_score), es.wait_count)


def our_decision(values, params):
    r = replay_early_stopping(values, **params)
    if r.stop is not None:
        return ("stop", r.stop.index, r.stop.reason)
    return ("run", r.best, r.wait)


def test_replay_agrees_with_lightning_on_1200_random_sequences():
    rng = random.Random(20260101)
    seen = set()
    for case in range(1200):
        values, params = random_case(rng)
        theirs, ours = lightning_decision(values, params), our_decision(values, params)
        assert ours == theirs, f"case {case}: {values} {params}"
        seen.add(theirs[2] if theirs[0] == "stop" else "no stop")
    assert seen == {"non_finite", "stopping_threshold", "divergence_threshold", "patience", "no stop"}


class Replayed(LightningModule):
    """Logs a prescribed validation metric, one value per epoch."""

    def __init__(self, values):
        super().__init__()
        self.values = values
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w**2).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(self.values[self.current_epoch], dtype=torch.float64))

    def train_dataloader(self):
        return [torch.zeros(1)]

    def val_dataloader(self):
        return [torch.zeros(1)]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_real_trainer_stops_where_the_replay_says():
    cases = [
        ([1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.4], dict(patience=3)),
        ([1.0, 0.9, math.nan, 0.5], dict(patience=3)),
        ([1.0, 0.9, 0.3, 0.2], dict(patience=3, stopping_threshold=0.5)),
        ([1.0, 2.0, 6.0, 0.2], dict(patience=5, divergence_threshold=5.0)),
        ([1.0, 0.8, 0.6, 0.4], dict(patience=1, min_delta=0.1)),
    ]
    for values, params in cases:
        es = EarlyStopping(monitor="val_loss", **params)
        trainer = Trainer(
            max_epochs=len(values),
            callbacks=[es],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            accelerator="cpu",
            devices=1,
        )
        trainer.fit(Replayed(values))
        replay = replay_early_stopping(values, **params)
        if replay.stop is None:
            assert es.stopping_reason is EarlyStoppingReason.NOT_STOPPED and trainer.current_epoch == len(values)
        else:
            assert REASONS[es.stopping_reason] == replay.stop.reason, (values, params)
            assert es.stopped_epoch == replay.stop.index, (values, params)
