"""Writes tests/data/torch_sharded/llava_tiny: llava_tiny's projector as a sharded PyTorch checkpoint
(pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json), in the zip format torch.save
writes since PyTorch 1.6, without PyTorch: the pickle names torch's globals through stand-in modules,
exactly as a state dict saved by torch does (OrderedDict of _rebuild_tensor_v2 over FloatStorage).

    python3 tests/data/tools/make_bin_shards.py
"""
import collections, json, os, pickle, shutil, struct, sys, types, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "llava_tiny")
OUT = os.path.join(HERE, "..", "torch_sharded", "llava_tiny")

torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
class FloatStorage: pass
FloatStorage.__module__ = "torch"
def _rebuild_tensor_v2(*args): pass
_rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils

class Storage:
    def __init__(self, key, numel): self.key, self.numel = key, numel

class Tensor:
    def __init__(self, key, shape):
        self.key, self.shape = key, shape
    def __reduce__(self):
        numel = 1
        for s in self.shape: numel *= s
        stride, acc = [], 1
        for s in reversed(self.shape): stride.insert(0, acc); acc *= s
        return (_rebuild_tensor_v2, (Storage(self.key, numel), 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))

class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", FloatStorage, obj.key, "cpu", obj.numel) if isinstance(obj, Storage) else None

def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    return {k: (v["shape"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in header.items() if k != "__metadata__"}

def save(path, tensors):
    state = collections.OrderedDict()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i, (name, (shape, data)) in enumerate(tensors):
            state[name] = Tensor(str(i), shape)
            z.writestr(f"archive/data/{i}", data)
        buf = __import__("io").BytesIO()
        Pickler(buf, protocol=2).dump(state)
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/version", "3\n")
        z.writestr("archive/byteorder", "little")

tensors = read_safetensors(os.path.join(SRC, "model.safetensors"))
names = sorted(k for k in tensors if "multi_modal_projector" in k)
shards = [names[: len(names) // 2], names[len(names) // 2:]]
os.makedirs(OUT, exist_ok=True)
weight_map = {}
for i, part in enumerate(shards):
    file = f"pytorch_model-0000{i + 1}-of-00002.bin"
    save(os.path.join(OUT, file), [(n, tensors[n]) for n in part])
    weight_map.update({n: file for n in part})
json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(OUT, "pytorch_model.bin.index.json"), "w"), indent=2)
shutil.copy(os.path.join(SRC, "config.json"), os.path.join(OUT, "config.json"))
print(OUT, {f: len(v) for f, v in zip(["1", "2"], shards)})
