"""unlearning-bench: compare machine-unlearning methods against retrained oracle ensembles."""
from bench.context import UnlearnContext
from bench.method import Method
from bench.registry import register_method, register_task
from bench.task import Split, Task, TaskData

__version__ = "0.1.0"
__all__ = ["Method", "Task", "Split", "TaskData", "UnlearnContext", "register_method", "register_task",
           "__version__"]
