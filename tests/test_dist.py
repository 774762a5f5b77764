"""tessera.dist: rank queries without a process group, and unwrapping DDP / torch.compile wrappers."""

import ast
from pathlib import Path

from torch import nn

from tessera import dist


def test_rank_and_world_size_follow_torchrun_env_without_a_group(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (dist.rank(), dist.world_size(), dist.local_rank()) == (3, 4, 1)
    assert not dist.is_main() and not dist.is_distributed()  # no process group was initialized
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert (dist.rank(), dist.world_size()) == (0, 1) and dist.is_main()
    dist.barrier()  # a no-op for one process


def test_unwrap_peels_compile_and_ddp_like_wrappers():
    class DistributedDataParallel(nn.Module):  # same name as torch's, which unwrap recognizes
        def __init__(self, module):
            super().__init__()
            self.module = module

    class Compiled(nn.Module):
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

    inner = nn.Linear(2, 2)
    assert dist.unwrap(inner) is inner
    assert dist.unwrap(Compiled(DistributedDataParallel(inner))) is inner


def test_dist_imports_no_other_tessera_module():
    tree = ast.parse(Path(dist.__file__).read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [n for n in names if n.startswith("tessera")]
