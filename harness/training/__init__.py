"""``harness train``: the training loop every learned method shares (run folder, checkpoints, resume, loss plot).

A method package registers a ``TrainerSpec`` whose target implements ``Trainer``; the loop owns everything else.
"""

from harness.training.trainer import Trainer, TrainingContext, step_generator, step_seed

__all__ = ["Trainer", "TrainingContext", "step_generator", "step_seed"]
