"""The guest image: a Linux kernel and an initramfs that boots capOS in QEMU.

Built from the Debian packages pinned in `image.lock` (a kernel, CPython and
the libraries it needs) plus this project's `kernel`, `demos` and schema
bundle, with `/init` starting `kernel.hosts.guest` as PID 1. Nothing is
fetched at run time: the packages are downloaded once with `apt-get
download name=version`, checked against the lock's sha256, and kept in the
cache. The image lives in the user's cache directory, keyed by a hash of
everything that goes into it, so an edit to the kernel package or the lock
makes a new one and an unchanged tree reuses the old.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kernel.manifest import BUILT_MANIFEST, default_manifest, encode_document, load_document
from server.settings import default_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK_PATH = Path(__file__).with_name("image.lock")
GUEST_ROOT = "opt/capos"  # where the project's packages live inside the guest
PYTHON = "usr/bin/python3.11"
# Bumped when the recipe below changes in a way the hashed inputs do not show.
RECIPE_VERSION = "1"

# Parts of the packages the guest never uses: dropped to keep each VM small.
_PRUNE = (
    "usr/share",
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/lib/python3.11/test",
    "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/turtledemo",
    "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data",
    "usr/lib/python3.11/distutils",
    "usr/lib/python3.11/config-3.11-x86_64-linux-gnu",
    "usr/lib/python3.11/sqlite3",
    "usr/lib/python3.11/dbm",
    "usr/lib/python3.11/curses",
    "usr/lib/python3.11/venv",
    "usr/lib/python3.11/unittest",
    "usr/lib/python3.11/xmlrpc",
    "usr/lib/python3.11/wsgiref",
    "usr/lib/python3.11/asyncio",
    "usr/lib/python3.11/multiprocessing",
    "usr/lib/python3.11/lib-dynload/_sqlite3.cpython-311-x86_64-linux-gnu.so",
    "usr/lib/python3.11/lib-dynload/_curses.cpython-311-x86_64-linux-gnu.so",
)
# Device nodes the guest needs before anything could create them.
_DEVICES = {
    "dev/console": (5, 1),
    "dev/null": (1, 3),
    "dev/urandom": (1, 9),
    "dev/ttyS0": (4, 64),  # the terminal: the shell's TerminalSession
    "dev/ttyS1": (4, 65),  # the control channel: Cap'n Proto messages
}
_INIT = f"""#!/{PYTHON} -S
# PID 1: the capOS guest host (kernel/hosts/guest.py).
import sys
sys.path.insert(0, "/{GUEST_ROOT}")
from kernel.hosts.guest import main
main()
"""


class ImageError(Exception):
    """The image cannot be built; the message says what to do."""


@dataclass(frozen=True)
class Image:
    kernel: Path
    initrd: Path
    key: str


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    sha256: str

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_amd64.deb"  # as apt names it


def read_lock(path: Path = LOCK_PATH) -> list[Package]:
    packages = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            spec, sha256 = line.split()
            name, version = spec.split("=", 1)
        except ValueError:
            raise ImageError(f"{path}:{number}: expected 'name=version sha256'") from None
        packages.append(Package(name, version, sha256))
    return packages


def _project_files() -> Iterator[tuple[str, Path]]:
    """(guest path, host path) of every project file the guest carries."""
    for top in ("kernel", "demos"):
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield f"{GUEST_ROOT}/{path.relative_to(REPO_ROOT)}", path
    yield f"{GUEST_ROOT}/schema/bundle.json", REPO_ROOT / "schema" / "bundle.json"


def image_key() -> str:
    """A hash of every input: the lock, this recipe, and the project files."""
    digest = hashlib.sha256(RECIPE_VERSION.encode())
    for path in (LOCK_PATH, Path(__file__)):
        digest.update(path.read_bytes())
    for guest, host in _project_files():
        digest.update(guest.encode() + b"\0" + host.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_image(cache_dir: Path) -> Image | None:
    """The image for the current inputs, if it has been built."""
    key = image_key()
    where = cache_dir / "images" / key
    image = Image(where / "vmlinuz", where / "initrd.img", key)
    return image if image.initrd.exists() and image.kernel.exists() else None


def ensure_image(
    cache_dir: Path | None = None, progress: Callable[[str], None] | None = None
) -> Image:
    """The current image, built first when it is missing or stale."""
    cache_dir = cache_dir or default_cache_dir()
    return cached_image(cache_dir) or build_image(cache_dir, progress or _say)


def _say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def build_image(cache_dir: Path, progress: Callable[[str], None] = _say) -> Image:
    key = image_key()
    packages = read_lock()
    debs = _download(packages, cache_dir / "debs", progress)
    final = cache_dir / "images" / key
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".build-") as scratch:
        root = Path(scratch) / "root"
        out = Path(scratch) / "image"
        out.mkdir()
        progress(f"unpacking {len(debs)} packages")
        for package, deb in zip(packages, debs, strict=True):
            if package.name.startswith("linux-image-"):
                _extract_kernel(deb, out / "vmlinuz")
            else:
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        for part in _PRUNE:
            target = root / part
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        _keep_only(root / "usr" / "bin", {"python3.11"})
        for guest, host in _project_files():
            (root / guest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host, root / guest)
        built = encode_document(load_document(default_manifest()))
        (root / GUEST_ROOT / BUILT_MANIFEST).write_bytes(built)
        progress("compiling the Python modules")
        _compile(root)
        progress("writing the initramfs")
        (out / "initrd.img").write_bytes(_cpio(root))
        shutil.rmtree(final, ignore_errors=True)
        out.rename(final)
    size = (final / "initrd.img").stat().st_size
    progress(f"guest image {key}: {final} (initramfs {size / 2**20:.1f} MiB)")
    return Image(final / "vmlinuz", final / "initrd.img", key)


def _download(packages: list[Package], where: Path, progress: Callable[[str], None]) -> list[Path]:
    where.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not (where / p.deb_name).exists()]
    if missing:
        if shutil.which("apt-get") is None:
            raise ImageError(
                "building the guest image needs Debian's apt-get (to download the pinned "
                "packages in server/image.lock); run it on Debian 12 or copy the .deb files "
                f"into {where}"
            )
        progress(f"downloading {len(missing)} pinned Debian packages into {where}")
        specs = [f"{p.name}={p.version}" for p in missing]
        download = ["apt-get", "download", "-q", *specs]
        result = subprocess.run(download, cwd=where, capture_output=True, text=True)
        if result.returncode and os.geteuid() == 0:  # a fresh machine's lists may be empty
            progress("refreshing apt's package lists (apt-get update), then retrying")
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            result = subprocess.run(download, cwd=where, capture_output=True, text=True)
        if result.returncode:
            raise ImageError(
                f"apt-get download failed: {result.stderr.strip()}\n"
                "(a pinned version may have left the mirror: update server/image.lock)"
            )
    debs = []
    for package in packages:
        deb = where / package.deb_name
        actual = hashlib.sha256(deb.read_bytes()).hexdigest()
        if actual != package.sha256:
            deb.unlink()
            raise ImageError(
                f"{deb.name} has sha256 {actual}, the lock says {package.sha256}: "
                "refusing it (deleted; rerun to download it again)"
            )
        debs.append(deb)
    return debs


def _extract_kernel(deb: Path, target: Path) -> None:
    """Only /boot/vmlinuz-*: the guest needs no modules (its serial ports are built in)."""
    data = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if member.name.startswith("./boot/vmlinuz-"):
                kernel = tar.extractfile(member)
                if kernel is None:
                    raise ImageError(f"{deb.name}: {member.name} is not a regular file")
                target.write_bytes(kernel.read())
                return
    raise ImageError(f"{deb.name} holds no /boot/vmlinuz-*")


def _keep_only(directory: Path, names: set[str]) -> None:
    for entry in directory.iterdir():
        if entry.name not in names:
            entry.unlink()


def _compile(root: Path) -> None:
    """Byte-compile with the guest's own interpreter, so its magic number always matches.

    The standard library becomes bytecode only (smaller); the project keeps
    its sources beside the bytecode so tracebacks show lines. Hash-checked
    pycs never look at file times, which the initramfs does not keep.
    """
    loader = root / "lib64" / "ld-linux-x86-64.so.2"
    libs = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
    python = [str(root / "lib" / "x86_64-linux-gnu" / loader.readlink().name)]
    python += ["--library-path", libs, str(root / PYTHON), "-S", "-m", "compileall", "-q"]
    python += ["--invalidation-mode", "unchecked-hash", "-s", str(root), "-p", "/"]
    env = {"PYTHONHOME": str(root / "usr"), "PYTHONDONTWRITEBYTECODE": "1"}
    stdlib = root / "usr" / "lib" / "python3.11"
    for args in ([*python, "-b", str(stdlib)], [*python, str(root / GUEST_ROOT)]):
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        if result.returncode:
            raise ImageError(f"byte-compiling the guest's modules failed:\n{result.stdout}")
    for source in stdlib.rglob("*.py"):
        if source.with_suffix(".pyc").exists():
            source.unlink()


class _Cpio:
    """A newc cpio archive, written entry by entry; times are 0, so builds repeat exactly."""

    def __init__(self) -> None:
        self.out = bytearray()
        self._inode = 0

    def entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        self._inode += 1
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0)
        self.out.extend(b"070701" + b"".join(b"%08x" % f for f in fields) + encoded)
        self.out.extend(b"\0" * (-len(self.out) % 4) + data)
        self.out.extend(b"\0" * (-len(self.out) % 4))

    def close(self) -> bytes:
        self.entry("TRAILER!!!", 0)
        return bytes(self.out)


def _cpio(root: Path) -> bytes:
    """A newc cpio archive of `root` plus the device nodes and /init."""
    archive = _Cpio()
    for directory in ("dev", "proc", "sys", "tmp", "run"):
        archive.entry(directory, stat.S_IFDIR | 0o755)
    for name, rdev in _DEVICES.items():
        archive.entry(name, stat.S_IFCHR | 0o600, rdev=rdev)
    archive.entry("init", stat.S_IFREG | 0o755, _INIT.encode())
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            archive.entry(name, stat.S_IFLNK | 0o777, os.readlink(path).encode())
        elif stat.S_ISDIR(info.st_mode):
            archive.entry(name, stat.S_IFDIR | 0o755)
        elif stat.S_ISREG(info.st_mode):
            archive.entry(name, stat.S_IFREG | (info.st_mode & 0o777), path.read_bytes())
    return archive.close()


def with_init(image: Image, init: str, where: Path) -> Image:
    """`image` with another PID 1: a guest that misbehaves on purpose, for fault tests.

    Linux unpacks concatenated cpio archives in order, a later file replacing an
    earlier one, so the new `/init` is a small archive appended to the image's."""
    where.mkdir(parents=True, exist_ok=True)
    archive = _Cpio()
    archive.entry("init", stat.S_IFREG | 0o755, f"#!/{PYTHON} -S\n{init}".encode())
    initrd = where / "initrd.img"
    initrd.write_bytes(image.initrd.read_bytes() + archive.close())
    return Image(
        image.kernel, initrd, f"{image.key}-{hashlib.sha256(init.encode()).hexdigest()[:8]}"
    )


def build_command(force: bool) -> int:
    """`capos-playground image build`."""
    cache_dir = default_cache_dir()
    try:
        image = build_image(cache_dir) if force else ensure_image(cache_dir)
    except ImageError as exc:
        print(f"capos-playground: {exc}", file=sys.stderr)
        return 1
    print(image.kernel.parent)
    return 0
