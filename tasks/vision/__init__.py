"""Vision tasks (CIFAR-10, CelebA) with their ResNets and fast training recipe, and the contract's image probe."""
from bench.catalog import PROBES
from tasks.vision import celeba, cifar10  # noqa: F401  (registers cifar10 and celeba)

PROBES.register("vision", "tasks.vision.probe:tiny_vision_task")
