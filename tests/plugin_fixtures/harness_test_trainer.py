"""A tiny trainer used by the tests, registered through an entry point like any third-party plugin: a linear map
from a corpus sample's downsampled frontal image to its identity coefficients."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from harness.api import TrainerSpec
from harness.checkpoints import Checkpoint
from harness.plugins import hookimpl
from harness.synth.corpus import Corpus
from harness.training import TrainingContext, step_generator


class TinyTrainer:
    def setup(self, context: TrainingContext) -> None:
        self.context = context
        self.corpus = Corpus(context.data)
        sample = self.corpus.sample(0)
        self.inputs = int(np.prod(sample["rgb"][0, ::4, ::4].shape))
        self.outputs = int(sample["shape"].shape[0])
        self.model = torch.nn.Linear(self.inputs, self.outputs)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=float(context.config["lr"]))

    def train_step(self, step: int) -> dict[str, float]:
        delay = float(os.environ.get("HARNESS_TEST_TRAIN_SLEEP", "0"))
        if delay:
            time.sleep(delay)
        rng = step_generator(self.context.seed, step)
        batch = self.corpus.batch(sorted(rng.choice(len(self.corpus), int(self.context.config["batch"]))))
        x = torch.from_numpy(batch["rgb"][:, 0, ::4, ::4].reshape(len(batch["shape"]), -1) / 255.0).float()
        y = torch.from_numpy(batch["shape"]).float()
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        return {"loss": float(loss)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])

    def export(self) -> Checkpoint:
        return Checkpoint(method="tiny", architecture={"inputs": self.inputs, "outputs": self.outputs},
                          state=dict(self.model.state_dict()), head_model=self.corpus.manifest["head_model"],
                          uv_layout=self.corpus.manifest["uv_layout"])


@hookimpl
def register_trainers(register):
    register(TrainerSpec(name="tiny", target="harness_test_trainer:TinyTrainer",
                         default_config={"lr": 0.05, "batch": 4, "steps": 40}))
