"""The contract builds a method's required inputs through the runner's providers table, not a copy of it;
array hashing has one helper."""
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

import bench.contract as contract
from bench import Method
from bench.bounds import Steps
from bench.digests import array_bytes, array_digest
from bench.optim import clone
from bench.providers import PROVIDERS, Provider


@dataclass(kw_only=True)
class NeedsOracle(Method):
    """Asks for oracle outputs (test fixture)."""
    name = "needs-oracle"
    requires = frozenset({"oracle_outputs"})
    steps: Steps = 0

    def unlearn(self, model, ctx):
        return clone(model)


def test_contract_inputs_come_from_the_providers_table(monkeypatch):
    calls = []

    def provide(env):
        calls.append((env.plan.method.name, env.spec("target")["seed"], env.model("original")))
        return "from the provider", {}

    monkeypatch.setitem(PROVIDERS, "oracle_outputs", Provider("oracle_outputs", provide))
    monkeypatch.setattr(contract, "_PROVIDED", {})
    probe = contract._private_copy(contract._probe(NeedsOracle))
    ctx = contract._context(NeedsOracle(), probe)
    assert ctx.oracle_outputs == "from the provider"
    assert len(calls) == 1 and calls[0][0] == "needs-oracle" and calls[0][2] is probe.original
    contract._context(NeedsOracle(), probe)
    assert len(calls) == 1  # built once per probe and parameters, like a cached run


def test_the_real_oracle_provider_predicts_with_a_model_trained_on_retain(monkeypatch):
    monkeypatch.setattr(contract, "_PROVIDED", {})
    probe = contract._private_copy(contract._probe(NeedsOracle))
    predict = contract._context(NeedsOracle(), probe).oracle_outputs
    task, data = probe.task, probe.data
    seed = contract.derive_seed(probe.seed, "target")
    oracle = task.train(task.make_model(seed), data.retain, seed).eval()
    with torch.no_grad():
        assert torch.equal(predict(data.forget.x), task.outputs(oracle, data.forget.x))


def test_array_digest_is_dtype_shape_and_bytes():
    a = np.array([1, 258], dtype=np.int64)
    expected = hashlib.sha256(b"int64|(2,)|" + (1).to_bytes(8, "little") + (258).to_bytes(8, "little")).hexdigest()
    assert array_digest(a) == expected
    t = torch.tensor([1.0, -2.0], dtype=torch.bfloat16)  # numpy has no bfloat16: hashed through a uint8 view
    assert array_bytes(t) == bytes([0x80, 0x3F, 0x00, 0xC0])
    assert array_bytes(torch.tensor(7, dtype=torch.int64)) == (7).to_bytes(8, "little")  # 0-dim (BatchNorm counters)
    assert array_bytes(torch.zeros(0)) == b""
    assert array_digest(a) != array_digest(a.astype(np.int32)) != array_digest(a.reshape(2, 1))
    assert array_bytes(np.arange(6).reshape(2, 3)[:, ::2]) == np.array([[0, 2], [3, 5]]).tobytes()  # C order
