"""Checks that the image the Dockerfile builds runs the binary `cargo build --release` makes; called
by scripts/check-dockerfile.sh (not on its own). No Docker engine runs here, so this reads the file:

    python scripts/check_dockerfile.py DOCKERFILE CARGO_TOML              # check the files
    python scripts/check_dockerfile.py --self-test DOCKERFILE CARGO_TOML  # broken copies must fail

What must hold, followed from the end of the file back to the build:
1. the final stage's ENTRYPOINT (exec form) runs a file named like a [[bin]] of Cargo.toml;
2. a COPY --from=<build stage> in the final stage puts that file there;
3. in the build stage, that COPY's source is target/release/<bin> under the stage's WORKDIR, or a
   file a RUN made from it (install / cp / mv); when target/ is a cache mount, that RUN is the
   one that builds, since a cache mount's files are not in the image;
4. the build stage runs `cargo build --release` building that bin (`--bin <bin>`, or every bin),
   before the file is taken, without --target, --target-dir, --profile or CARGO_TARGET_DIR /
   CARGO_BUILD_TARGET, each of which moves the binary out of target/release/.

Prints what it followed; exits 1 with the first break in the chain.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class Broken(Exception):
    """The chain from `cargo build --release` to the image's entrypoint breaks here."""


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    index: int
    name: str | None
    base: str
    line: int
    instructions: list[Instruction] = field(default_factory=list)


def instructions(text: str) -> list[Instruction]:
    """The instructions, continuation lines joined and comments dropped (the default escape `\\`)."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue  # blank lines, comments and parser directives
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = " ".join(part.strip() for part in pending)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    if pending:
        raise Broken(f"line {start}: the file ends inside a continued instruction")
    return out


def stages(text: str) -> list[Stage]:
    out: list[Stage] = []
    for ins in instructions(text):
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            out.append(Stage(len(out), name, words[0], ins.line))
        elif out:
            out[-1].instructions.append(ins)
    if not out:
        raise Broken("no FROM: not a Dockerfile")
    return out


def flags(args: str) -> tuple[dict[str, list[str]], str]:
    """The leading --flag=value options of an instruction, and the rest."""
    found: dict[str, list[str]] = {}
    rest = args
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        key, _, value = word[2:].partition("=")
        found.setdefault(key, []).append(value)
        rest = rest.strip()
    return found, rest


def bin_names(cargo_toml: Path) -> list[str]:
    manifest = tomllib.loads(cargo_toml.read_text())
    names = [b["name"] for b in manifest.get("bin", [])]
    # Without [[bin]], cargo builds src/main.rs as a bin named after the package.
    return names or [manifest["package"]["name"]]


def commands(shell: str) -> list[list[str]]:
    """The simple commands of a RUN's shell text, split on && || ; |."""
    out = []
    for part in re.split(r"&&|\|\||;|\|", shell):
        try:
            words = shlex.split(part)
        except ValueError as e:
            raise Broken(f"cannot read the shell command {part.strip()!r}: {e}") from e
        if words:
            out.append(words)
    return out


def absolute(path: str, workdir: str) -> str:
    return posixpath.normpath(posixpath.join(workdir, path))


def check(dockerfile: Path, cargo_toml: Path) -> list[str]:
    """What the chain follows, one line each; raises Broken where it breaks."""
    notes: list[str] = []
    bins = bin_names(cargo_toml)
    all_stages = stages(dockerfile.read_text())
    final = all_stages[-1]

    # 1. The entrypoint.
    entry = [i for i in final.instructions if i.keyword == "ENTRYPOINT"]
    if not entry:
        raise Broken(f"the final stage (line {final.line}) has no ENTRYPOINT")
    try:
        argv = json.loads(entry[-1].args)
    except json.JSONDecodeError as e:
        raise Broken(f"line {entry[-1].line}: ENTRYPOINT must be the exec form ([\"/path\", ...])") from e
    program = argv[0]
    bin_name = posixpath.basename(program)
    if bin_name not in bins:
        raise Broken(f"line {entry[-1].line}: the image runs {program}, but Cargo.toml's [[bin]] "
                     f"{'is' if len(bins) == 1 else 'are'} {', '.join(bins)}")
    notes.append(f"entrypoint {program} (line {entry[-1].line}): [[bin]] {bin_name}")

    # 2. The COPY that puts it there.
    copy = None
    for ins in final.instructions:
        if ins.keyword != "COPY":
            continue
        opts, rest = flags(ins.args)
        paths = rest.split()
        if len(paths) < 2:
            continue
        dest, sources = paths[-1], paths[:-1]
        for source in sources:
            target = posixpath.join(dest, posixpath.basename(source)) if dest.endswith("/") else dest
            if target == program:
                copy = (ins, opts, source)
    if copy is None:
        raise Broken(f"no COPY in the final stage puts a file at {program}, the ENTRYPOINT")
    ins, opts, source = copy
    if "from" not in opts:
        raise Broken(f"line {ins.line}: {program} is copied from the build context, not from the build stage")
    origin = opts["from"][-1]
    build = next((s for s in all_stages[:-1] if s.name == origin or str(s.index) == origin), None)
    if build is None:
        raise Broken(f"line {ins.line}: COPY --from={origin} names no earlier stage")
    notes.append(f"COPY --from={origin} {source} {program} (line {ins.line})")

    # 3 and 4. In the build stage: where the file comes from, and the cargo build that makes it.
    workdir = "/"
    built_at: int | None = None  # index of the RUN that builds the bin
    cache_targets: set[str] = set()
    produced_by: int | None = None
    release = f"target/release/{bin_name}"
    for position, ins in enumerate(build.instructions):
        if ins.keyword == "WORKDIR":
            workdir = absolute(ins.args, workdir)
        elif ins.keyword == "ENV":
            for variable in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"):
                if re.search(rf"(^|\s){variable}[=\s]", ins.args):
                    raise Broken(f"line {ins.line}: ENV {variable} moves the binary out of target/release/")
        elif ins.keyword == "RUN":
            opts, shell = flags(ins.args)
            mounts = opts.get("mount", [])
            for words in commands(shell):
                if words[:2] == ["cargo", "build"]:
                    args = words[2:]
                    for moving in ("--target", "--target-dir", "--profile"):
                        if any(a == moving or a.startswith(moving + "=") for a in args):
                            raise Broken(f"line {ins.line}: `cargo build {moving}` puts the binary "
                                         f"somewhere other than target/release/")
                    if "--release" not in args and "-r" not in args:
                        raise Broken(f"line {ins.line}: `cargo build` without --release builds "
                                     f"target/debug/{bin_name}, not {release}")
                    named = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--bin"]
                    named += [a.split("=", 1)[1] for a in args if a.startswith("--bin=")]
                    if named and bin_name not in named:
                        raise Broken(f"line {ins.line}: `cargo build --bin {' --bin '.join(named)}` "
                                     f"does not build {bin_name}, the binary the image runs")
                    built_at = position
                    cache_targets = {
                        absolute(m.group(1), workdir)
                        for mount in mounts
                        if "type=cache" in mount and (m := re.search(r"target=([^,]+)", mount))
                    }
                    notes.append(f"cargo build {' '.join(args)} (line {ins.line}, WORKDIR {workdir})")
                elif words[0] in ("install", "cp", "mv") and built_at is not None:
                    paths = [w for w in words[1:] if not w.startswith("-")]
                    # install's -m takes a value: drop what follows an option that takes one.
                    if words[0] == "install":
                        paths = [w for i, w in enumerate(words[1:], 1)
                                 if not w.startswith("-") and words[i - 1] not in ("-m", "-o", "-g", "--mode")]
                    if len(paths) == 2 and absolute(paths[0], workdir) == absolute(release, workdir) \
                            and absolute(paths[1], workdir) == absolute(source, workdir):
                        produced_by = position
                        notes.append(f"{words[0]} {paths[0]} {paths[1]} (line {ins.line})")
    if built_at is None:
        raise Broken(f"stage {origin} (line {build.line}) runs no `cargo build --release` that builds {bin_name}")
    release_path = absolute(release, workdir)
    if absolute(source, workdir) == release_path:
        if any(release_path.startswith(t.rstrip("/") + "/") for t in cache_targets):
            raise Broken(f"the image copies {release_path}, but target/ is a cache mount of the build "
                         f"RUN: its files are not in the stage's filesystem afterwards")
        return notes
    if produced_by is None:
        raise Broken(f"in stage {origin}, {source} is neither {release} nor made from it by a RUN "
                     f"after the build (install / cp / mv {release} {source})")
    if cache_targets and produced_by != built_at:
        raise Broken(f"target/ is a cache mount of the build RUN, so {release} must be copied out in "
                     f"that same RUN, not a later one")
    return notes


# Broken copies the self-test makes: (what, replace this, with this, a fragment of the message).
MUTATIONS = [
    ("the image runs another name than the [[bin]]",
     'ENTRYPOINT ["/usr/local/bin/crm-service"]', 'ENTRYPOINT ["/usr/local/bin/crm-server"]',
     "but Cargo.toml's [[bin]]"),
    ("the final stage copies a file the build stage never made",
     "COPY --from=build /out/crm-service", "COPY --from=build /out/crm", "is neither"),
    ("the build stage builds another bin",
     "--bin crm-service", "--bin crm-worker", "does not build crm-service"),
    ("a debug build", "cargo build --release", "cargo build", "without --release"),
    ("the binary taken from target/debug/",
     "target/release/crm-service /out", "target/debug/crm-service /out", "is neither"),
    ("a cross build, whose binary is in target/<triple>/release/",
     "cargo build --release", "cargo build --release --target x86_64-unknown-linux-musl",
     "`cargo build --target`"),
]


def self_test(dockerfile: Path, cargo_toml: Path, scratch: Path) -> list[str]:
    failures = []
    text = dockerfile.read_text()
    for what, old, new, fragment in MUTATIONS:
        if old not in text:
            failures.append(f"self-test ({what}): {old!r} is not in the Dockerfile any more; update MUTATIONS")
            continue
        broken = scratch / "Dockerfile"
        broken.write_text(text.replace(old, new, 1))
        try:
            check(broken, cargo_toml)
            failures.append(f"self-test ({what}): the broken copy passed")
        except Broken as e:
            if fragment not in str(e):
                failures.append(f"self-test ({what}): failed, but not for that reason: {e}")
            else:
                print(f"  self-test: caught {what}: {e}")
    return failures


def main() -> int:
    args = sys.argv[1:]
    testing = args[:1] == ["--self-test"]
    if testing:
        args = args[1:]
    dockerfile, cargo_toml = Path(args[0]), Path(args[1])
    if testing:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            failures = self_test(dockerfile, cargo_toml, Path(scratch))
        for f in failures:
            print(f"FAIL: {f}")
        return 1 if failures else 0
    try:
        for note in check(dockerfile, cargo_toml):
            print(f"  {note}")
    except Broken as e:
        print(f"FAIL: {dockerfile.name}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
