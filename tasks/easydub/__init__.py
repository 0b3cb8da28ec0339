"""EasyDUB (easydub/EasyDUB-code and the EasyDUB-dataset on the Hugging Face hub) as tasks and a reproduction."""
from tasks.easydub import task  # noqa: F401  (registers easydub-cifar10)
