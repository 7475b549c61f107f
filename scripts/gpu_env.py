#!/usr/bin/env python3
"""The GPU environment's lock (requirements-gpu.lock) and how `make install` / `make wheelhouse` use it.

Standard library only (but `compile` and `needs`, which run where pip is): it runs under the bare Python 3.12 that
builds the venv.

  gpu_env.py compile REPORT.json [--built DIR] > requirements-gpu.lock  # from pip's resolution report (the lock's
                                                                        # head says how; DIR: wheels built from sdists)
  gpu_env.py pins LOCK [--without GROUP...] [--sdist|--binary] [--resolved] [--have FREEZE]  # pins, one a line
  gpu_env.py plan LOCK --wheelhouse DIR [--system-python PY] --requirements OUT  # what an offline install takes
  gpu_env.py needs LOCK --dir DIR NAME...   # optional pins DIR lacks that NAME... need (NAME...: optional pins kept in
                                            # a WITHOUT=optional wheelhouse, `make wheelhouse KEEP=...`), one a line
  gpu_env.py pip-check PYTHON [LOCK]   # PYTHON -m pip check's complaints the lock does not accept (exit 1), judged
                                       # on its lines: pip check exits 1 on accepted complaints too
  gpu_env.py check LOCK --report REPORT.json               # the registry resolved the lock to itself (exit 1 if not)

A pin may carry one tag, as the first word of a trailing comment:
  # torch     torch and the CUDA binaries it pulls in (triton, nvidia-*, cuda-toolkit): what a system torch brings
  # optional  what only vLLM's optional kernels need (flashinfer, cutlass-dsl, tilelang, ...): vLLM imports them
              lazily, and the offline GPU host ran verl + vLLM without them (gpu-host-notes.md; vLLM's sampler then
              needs VLLM_USE_FLASHINFER_SAMPLER=0, which `make smoke` sets where flashinfer is missing)
  # sdist     no wheel on the registry: `make wheelhouse` builds one (pip wheel --no-deps)
A wheelhouse may leave a group out (`make wheelhouse DIR=... WITHOUT="torch optional"`). `make install WHEELHOUSE=DIR`
then takes the torch group from the system Python when its torch is the pinned release (a venv with
--system-site-packages: that torch and the CUDA libraries it was installed with, whatever their versions), and goes on
without the optional group. Every other pin is installed from DIR, or the install stops naming what DIR lacks.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

TAGS = ("torch", "optional", "sdist")
# of torch's closure, the CUDA binaries (GBs) that come with any torch install; its pure-Python requirements (sympy,
# jinja2, fsspec, ...) are pinned and installed like the rest
TORCH_BINARIES = ("torch", "triton", "nvidia-", "cuda-toolkit")
# vLLM's requirements the offline GPU host's runs never imported (gpu-host-notes.md): with what only they need,
# tag "optional"
OPTIONAL_ROOTS = (
    "flashinfer-python", "flashinfer-cubin", "tokenspeed-mla", "tokenspeed-triton", "nvidia-cutlass-dsl", "tilelang",
    "quack-kernels", "humming-kernels", "fastsafetensors", "opencv-python-headless",
)
# pinned beside the resolved set and installed --no-deps like every pin: veomni 0.1.12 asks datasets<=2.21.0 for its
# own data loaders, which verl's VeOmni engine never imports (it takes veomni's models, optimizers and parallel
# state); verl 0.9.1 needs datasets 5. Its other requirements are in the resolution (the lock's head).
NO_DEPS_PINS = ("veomni==0.1.12",)
# pip check's complaints the lock accepts (the one above)
ACCEPTED = (re.compile(r"^veomni 0\.1\.12 has requirement datasets"),)
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_machine": "x86_64",
       "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
       "platform_python_implementation": "CPython"}


def accepted(line: str, optional: set[str]) -> bool:
    """A pip check complaint the lock accepts: ACCEPTED, or an optional pin a wheelhouse left out on purpose."""
    if any(a.search(line) for a in ACCEPTED):
        return True
    missing = re.search(r" requires (\S+), which is not installed", line)
    return bool(missing) and norm(missing.group(1)) in optional


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


NO_DEPS = {norm(p.split("==")[0]): p for p in NO_DEPS_PINS}  # normalized name -> pin


def read_lock(path: Path) -> list[tuple[str, str, str]]:
    """(name, version, tag) of every pin; tag '' for none."""
    pins = []
    for line in path.read_text().splitlines():
        spec, _, comment = line.partition("#")
        if "==" not in spec:
            continue
        name, version = (s.strip() for s in spec.split("=="))
        words = comment.split()
        pins.append((name, version, words[0] if words and words[0] in TAGS else ""))
    return pins


def wheel_key(filename: str) -> tuple[str, str] | None:
    """(normalized name, version) of a wheel's file name."""
    if not filename.endswith(".whl"):
        return None
    name, version = filename.split("-")[:2]
    return norm(name), version


def compile_lock(report: Path, built: Path | None = None) -> str:
    """The lock from pip's resolution report: every pin, tagged (torch's closure; the optional kernels; sdists: the
    pins resolved from `built`, where scripts/gpu_lock.sh puts the wheels it builds from the source-only pins)."""
    from pip._vendor.packaging.requirements import Requirement

    installs = {norm(i["metadata"]["name"]): i for i in json.loads(report.read_text())["install"]}

    def deps(name: str, extras: tuple[str, ...]) -> set[tuple[str, tuple[str, ...]]]:
        out = set()
        for spec in installs[name]["metadata"].get("requires_dist") or []:
            req = Requirement(spec)
            if req.marker and not any(req.marker.evaluate({**ENV, "extra": e}) for e in ("", *extras)):
                continue
            if norm(req.name) in installs:
                out.add((norm(req.name), tuple(sorted(req.extras))))
        return out

    def closure(roots, stop=frozenset()) -> set[str]:
        seen, stack = set(), list(roots)
        while stack:
            item = stack.pop()
            if item[0] in stop or item in seen:
                continue
            seen.add(item)
            stack.extend(deps(*item))
        return {n for n, _ in seen}

    roots = [(n, tuple(i.get("requested_extras") or ())) for n, i in installs.items() if i.get("requested")]
    torch = {n for n in closure([("torch", ())]) if n == "torch" or n.startswith(TORCH_BINARIES[1:])}
    optional = set(installs) - closure(roots, stop=frozenset(OPTIONAL_ROOTS))  # reached only through them
    # the registry itself may be a file:// mirror: a built wheel is known by its folder, not by its scheme
    built_uri = built.resolve().as_uri() + "/" if built is not None else None
    lines = []
    for name in sorted([*installs, *NO_DEPS]):
        if name not in installs:
            lines.append(NO_DEPS[name])
            continue
        item = installs[name]
        url = item["download_info"]["url"]
        from_built = built_uri is not None and url.startswith(built_uri)
        tag = ("torch" if name in torch else "optional" if name in optional
               else "sdist" if from_built or not url.endswith(".whl") else "")
        lines.append(f"{item['metadata']['name']}=={item['metadata']['version']}" + (f"  # {tag}" if tag else ""))
    return "\n".join(lines) + "\n"


def system_versions(python: str | None) -> dict[str, str]:
    """Distributions the system Python has (normalized name -> version); {} without one."""
    if not python:
        return {}
    code = ("import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: d.version "
            "for d in m.distributions() if d.metadata['Name']}))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {norm(k): v for k, v in json.loads(out).items()}


def same_release(have: str, pin: str) -> bool:
    """`==pin` as pip reads it: a local label (2.11.0+cu130) does not count."""
    return bool(have) and have.split("+")[0] == pin


def plan(lock: Path, wheelhouse: Path, system: dict[str, str]) -> dict:
    """What `make install WHEELHOUSE=DIR` does: install these pins from DIR, take those from the system torch, leave
    out the optional ones DIR lacks; `missing`: pins nobody provides (the install stops, naming them)."""
    have = {key for f in wheelhouse.iterdir() if (key := wheel_key(f.name))}
    pins = read_lock(lock)
    torch_pin = next(v for n, v, _ in pins if norm(n) == "torch")
    system_torch = ("torch", torch_pin) not in have and same_release(system.get("torch", ""), torch_pin)
    out: dict = {"system_torch": system_torch, "install": [], "from_system": [], "left_out": [], "missing": []}
    for name, version, tag in pins:
        if (norm(name), version) in have:
            out["install"].append(f"{name}=={version}")
        elif system_torch and same_release(system.get(norm(name), ""), version):  # the system has this release
            out["from_system"].append(f"{name}=={system[norm(name)]}")
        elif system_torch and tag == "torch":  # the system torch's own CUDA stack, as it was installed
            out["from_system"].append(f"{name}=={system.get(norm(name), 'absent')}")
        elif tag == "optional":
            out["left_out"].append(f"{name}=={version}")
        else:
            out["missing"].append(f"{name}=={version}")
    return out


class NotOptional(ValueError):
    """A KEEP name that is not an optional pin of the lock."""


def requires(wheel: Path) -> set[str]:
    """The normalized names a wheel requires on the GPU host (its METADATA's Requires-Dist whose markers hold there,
    extras left out)."""
    import zipfile
    from email.parser import HeaderParser

    from pip._vendor.packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(z.read(meta).decode())
    reqs = [Requirement(r) for r in headers.get_all("Requires-Dist") or []]
    return {norm(r.name) for r in reqs if not r.marker or r.marker.evaluate({**ENV, "extra": ""})}


def needs(lock: Path, wheelhouse: Path, names: list[str]) -> list[str]:
    """The optional pins a wheelhouse lacks that `names` (optional pins) need: themselves, and the optional pins their
    wheels in the wheelhouse require, transitively. Its other requirements are the lock's other groups, which the
    wheelhouse has (or, WITHOUT=torch, the host). Call again after fetching these until it answers nothing: a wheel's
    requirements are read once it is in the wheelhouse. A name that is not an optional pin: NotOptional. A requirement's
    extras are not followed (tilelang 0.1.9 asks for none)."""
    optional = {norm(n): (n, v) for n, v, t in read_lock(lock) if t == "optional"}
    wrong = [n for n in names if norm(n) not in optional]
    if wrong:
        raise NotOptional(f"not an optional pin of {lock.name}: {', '.join(wrong)} (the optional group: "
                         f"{', '.join(sorted(optional))})")
    wheels = {key[0]: f for f in wheelhouse.iterdir()
              if (key := wheel_key(f.name)) and key[0] in optional and key[1] == optional[key[0]][1]}
    seen, stack = set(), [norm(n) for n in names]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in wheels:
            stack.extend(r for r in requires(wheels[name]) if r in optional)
    return sorted("==".join(optional[n]) for n in seen if n not in wheels)


def check(lock: Path, report: Path) -> list[str]:
    """Differences between the lock and what the registry resolved from it (`make lock-check`)."""
    installs = json.loads(report.read_text())["install"]
    resolved = {norm(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    pinned = {norm(n): v for n, v, _ in read_lock(lock)}
    for name in NO_DEPS:
        pinned.pop(name)
    problems = [f"{n}: locked {v}, resolved {resolved.get(n, 'nothing')}" for n, v in pinned.items()
                if resolved.get(n) != v]
    return problems + [f"{n}=={v}: resolved but not locked" for n, v in resolved.items() if n not in pinned]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu_env.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comp = sub.add_parser("compile")
    comp.add_argument("report", type=Path)
    comp.add_argument("--built", type=Path, help="the folder of the wheels built from source-only pins")
    pins = sub.add_parser("pins")
    pins.add_argument("lock", type=Path)
    pins.add_argument("--without", nargs="*", default=[], choices=TAGS[:2])
    pins.add_argument("--sdist", action="store_true", help="only the pins with no wheel")
    pins.add_argument("--binary", action="store_true", help="only the pins with a wheel")
    pins.add_argument("--resolved", action="store_true", help="leave out the pins installed beside the resolution")
    pins.add_argument("--have", type=Path, help="a host's `pip list --format=freeze`: leave out what it has already")
    p = sub.add_parser("plan")
    p.add_argument("lock", type=Path)
    p.add_argument("--wheelhouse", type=Path, required=True)
    p.add_argument("--system-python")
    p.add_argument("--requirements", type=Path, required=True, help="write the pins to install here")
    nd = sub.add_parser("needs")
    nd.add_argument("lock", type=Path)
    nd.add_argument("--dir", type=Path, required=True, help="the wheelhouse")
    nd.add_argument("names", nargs="+")
    pc = sub.add_parser("pip-check")
    pc.add_argument("python")
    pc.add_argument("lock", type=Path, nargs="?", default=Path(__file__).parent.parent / "requirements-gpu.lock")
    c = sub.add_parser("check")
    c.add_argument("lock", type=Path)
    c.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "compile":
        print(compile_lock(args.report, args.built), end="")
    elif args.command == "pins":
        chosen = [(n, v, t) for n, v, t in read_lock(args.lock) if t not in args.without]
        chosen = [x for x in chosen if not (args.sdist and x[2] != "sdist") and not (args.binary and x[2] == "sdist")]
        if args.have:  # the host has these releases: the venv sees them (a system torch's --system-site-packages)
            host = dict(ln.split("==", 1) for ln in args.have.read_text().splitlines() if "==" in ln)
            host = {norm(k): v.strip() for k, v in host.items()}
            chosen = [x for x in chosen if not same_release(host.get(norm(x[0]), ""), x[1])]
        if args.resolved:
            chosen = [x for x in chosen if norm(x[0]) not in NO_DEPS]
        print("\n".join(f"{n}=={v}" for n, v, _ in chosen))
    elif args.command == "plan":
        return _plan(args)
    elif args.command == "needs":
        try:
            print("".join(f"{pin}\n" for pin in needs(args.lock, args.dir, args.names)), end="")
        except NotOptional as e:
            print(f"KEEP: {e}\n    fix: name pins the lock tags optional (tilelang: `make wheelhouse ... "
                  f"WITHOUT=\"torch optional\" KEEP=tilelang`)", file=sys.stderr)
            return 2
    elif args.command == "pip-check":
        # pip check exits 1 on any complaint, accepted ones too: judged on its lines, never on its exit code
        text = subprocess.run([args.python, "-m", "pip", "check"], capture_output=True, text=True, check=False).stdout
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("No broken")]
        optional = {norm(n) for n, _, t in read_lock(args.lock) if t == "optional"}
        bad = [ln for ln in lines if not accepted(ln, optional)]
        print("\n".join(bad))
        return 1 if bad else 0
    elif args.command == "check":
        problems = check(args.lock, args.report)
        print("\n".join(problems)
              if problems else f"{args.lock}: the registry resolves it to itself ({len(read_lock(args.lock))} pins)")
        return 1 if problems else 0
    return 0


def _plan(args) -> int:
    out = plan(args.lock, args.wheelhouse, system_versions(args.system_python))
    args.requirements.write_text("".join(f"{r}\n" for r in out["install"]))
    if out["system_torch"]:
        print(f"gpu_env: {args.wheelhouse} has no torch wheel and {args.system_python} has the pinned torch: the venv "
              f"sees the system's packages; taken from there: {', '.join(out['from_system'])}", file=sys.stderr)
    if out["left_out"]:
        print(f"gpu_env: left out (optional, not in the wheelhouse): {', '.join(out['left_out'])}", file=sys.stderr)
    if out["missing"]:
        torch = next(v for n, v, _ in read_lock(args.lock) if norm(n) == "torch")
        print(f"WHEELHOUSE: {args.wheelhouse} lacks {len(out['missing'])} pin(s) of {args.lock} that nothing else "
              f"provides (got: {', '.join(out['missing'])}).\n    fix: rebuild it with `make wheelhouse "
              f"DIR={args.wheelhouse}` on a machine with the registry (WITHOUT=torch only for a host whose Python "
              f"already has torch=={torch})", file=sys.stderr)
        return 2
    print("system" if out["system_torch"] else "isolated")  # the venv's kind, for scripts/install_gpu.sh
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
