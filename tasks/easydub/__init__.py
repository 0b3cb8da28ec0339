"""EasyDUB (easydub/EasyDUB-code and the EasyDUB-dataset on the Hugging Face hub) as tasks and a reproduction."""
from bench.catalog import register_reproduction
from tasks.easydub import task  # noqa: F401  (registers easydub-cifar10)

register_reproduction("easydub-pretrain", "tasks.easydub.reproduce")  # EasyDUB's README table, from their dataset
