"""Image workflows: pack a directory into an image, unpack an image into a runtime bundle
(flat, or layered on a shared layer store), commit a bundle's changes, edit a config.

Orchestration only: layers are written and applied by ``oci.layer``, config.json by ``oci.bundle.convert``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from .. import jsontext
from ..bundle.meta import BundleMeta
from ..bundle.convert import DEFAULT_PATH
from ..digest import CHUNK, Digest
from ..errors import (BundleError, DigestMismatchError, InvalidDocumentError, LayerError, NotFoundError,
                      RegistryAuthError, RegistryError, RegistryNotFoundError, TagNotFoundError, UsageError, warn)
from ..layer.generate import write_layer
from ..layer.snapshot import TreeSnapshot, write_snapshot
from ..layout import Layout, destination
from .locations import ImageLike, LayoutSink, LayoutSource, Sink, Source, layout_ref, open_sink, open_source, opened
from ..models import (
    MT_CONFIG,
    MT_MANIFEST,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Manifest,
    Platform,
    RootFS,
    canonical_json,
    layer_type,
)
from ..hostplatform import host_platform
from .platforms import resolve_manifest
from ..progress import Progress
from .ref import DEFAULT_TAG, DockerArchiveRef, LayoutRef, OCIArchiveRef, Ref, absolute, as_ref
from ..registry.options import DEFAULT_JOBS
from ..scratch import scratch_dir

if TYPE_CHECKING:
    from ..layer.layertree import LayerTree
    from ..registry.options import RegistryOptions

SNAPSHOT_NAME = "ocikit-snapshot.jsonl"
CONFIG_NAME = "config.json"
DEFAULT_ARGS = ["sh"]


@dataclass
class ConfigChanges:
    """Changes to an image's execution config (``pack`` options, ``config`` edits).

    Lists left as None are untouched; ``env`` entries ``K=V`` replace an existing ``K``;
    ``labels``/``expose``/``volumes`` are added. ``clear_*`` empties a field first.
    """

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    stop_signal: str | None = None
    author: str | None = None
    created: str | None = None
    clear_env: bool = False
    clear_labels: bool = False
    clear_expose: bool = False
    clear_volumes: bool = False
    clear_entrypoint: bool = False
    clear_cmd: bool = False

    def apply(self, cc: ContainerConfig) -> ContainerConfig:
        """A copy of ``cc`` with these changes made."""
        out = replace(cc)
        if self.clear_entrypoint:
            out.entrypoint = None
        if self.clear_cmd:
            out.cmd = None
        if self.entrypoint is not None:
            out.entrypoint = list(self.entrypoint)
            if self.cmd is None and not self.clear_cmd:
                # As with Dockerfile ENTRYPOINT: a new entrypoint drops the old default args.
                out.cmd = None
        if self.cmd is not None:
            out.cmd = list(self.cmd)
        env = [] if self.clear_env else list(cc.env or [])
        for item in self.env:
            key, sep, _ = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--env {item!r}: expected KEY=VALUE")
            env = [e for e in env if e.partition("=")[0] != key] + [item]
        out.env = env or (None if self.clear_env or cc.env is None else [])
        labels = {} if self.clear_labels else dict(cc.labels or {})
        labels.update(self.labels)
        out.labels = labels or None
        ports = {} if self.clear_expose else dict(cc.exposed_ports or {})
        for port in self.expose:
            ports[_port(port)] = {}
        out.exposed_ports = ports or None
        volumes = {} if self.clear_volumes else dict(cc.volumes or {})
        for vol in self.volumes:
            if not vol.startswith("/"):
                raise UsageError(f"--volume {vol!r}: must be an absolute path")
            volumes[vol] = {}
        out.volumes = volumes or None
        if self.workdir is not None:
            if self.workdir and not self.workdir.startswith("/"):
                raise UsageError(f"--workdir {self.workdir!r}: must be an absolute path")
            out.working_dir = self.workdir or None
        if self.user is not None:
            out.user = self.user or None
        if self.stop_signal is not None:
            out.stop_signal = self.stop_signal or None
        return out


def _port(text: str) -> str:
    num, _, proto = text.partition("/")
    proto = proto or "tcp"
    if not num.isdigit() or not 0 < int(num) < 65536 or proto not in ("tcp", "udp", "sctp"):
        raise UsageError(f"--expose {text!r}: expected PORT[/tcp|udp|sctp]")
    return f"{int(num)}/{proto}"


def rfc3339(when: _dt.datetime | int | float) -> str:
    if not isinstance(when, _dt.datetime):
        when = _dt.datetime.fromtimestamp(int(when), _dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(changes: ConfigChanges, source_date_epoch: int | None) -> str:
    if changes.created:
        try:
            _dt.datetime.fromisoformat(changes.created.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--created {changes.created!r}: not an RFC 3339 date-time") from None
        return changes.created
    if source_date_epoch is not None:
        return rfc3339(source_date_epoch)
    return rfc3339(_dt.datetime.now(_dt.timezone.utc))


def _quiet(progress: Progress | None, label: str) -> Progress | None:
    if progress is None:
        return None
    progress.label = label
    return progress


# -- reading images ---------------------------------------------------------------------


@dataclass
class Image:
    """A resolved image: where it is, its manifest descriptor, manifest and config."""

    source: Source
    desc: Descriptor
    manifest: Manifest
    config: ImageConfig


def load_image(source: Source, platform: Platform | None = None, warn: Callable[[str], None] = warn) -> Image:
    """The image ``source`` names, for ``platform`` (default: the host) when it is an index.

    Every layer must have a layer media type (``warn`` hears of non-distributable ones)."""
    top = source.resolve()
    desc, manifest = resolve_manifest(source, top, platform)
    if desc.media_type == MT_MANIFEST and top.media_type == MT_MANIFEST:
        desc = Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)
    if manifest.config.media_type != MT_CONFIG:
        raise InvalidDocumentError(f"manifest {desc.digest}: config media type {manifest.config.media_type!r} is not an image config")
    for layer in manifest.layers:
        try:
            layer_type(layer, warn)
        except InvalidDocumentError as exc:
            raise exc.within(f"manifest {desc.digest}") from None
    config = ImageConfig.from_json(source.read_blob(manifest.config.digest, manifest.config.size), f"config {manifest.config.digest}")
    if len(config.rootfs.diff_ids) != len(manifest.layers):
        raise InvalidDocumentError(
            f"config {manifest.config.digest}: {len(config.rootfs.diff_ids)} diff_ids for {len(manifest.layers)} layers in manifest {desc.digest}"
        )
    return Image(source, desc, manifest, config)


def _apply_verified(source: Source, layer: Descriptor, diff_id: str, target: Path, **kw: Any) -> list[str]:
    """Apply one layer, checking its blob digest, size and diffID; return apply's warnings."""
    return _apply_stream(source.open_blob(layer.digest, layer.size), layer, diff_id, target, **kw)


def _apply_stream(opened: contextlib.AbstractContextManager, layer: Descriptor, diff_id: str, target: Path,
                  **kw: Any) -> list[str]:
    """Apply the layer ``opened`` gives (a stream that checks the blob's digest and size at
    its end), checking its diffID; return apply's warnings."""
    from ..layer.apply import apply_layer

    with opened as stream:
        try:
            result = apply_layer(stream, target, **kw)
        except LayerError as exc:
            _check_to_end(stream)
            raise exc.within(f"layer {layer.digest}") from None
        while stream.read(CHUNK):  # the decompressor may stop short of the blob's end; check all of it
            pass
    if str(result.diff_id) != diff_id:
        raise DigestMismatchError(f"layer {layer.digest}: uncompressed content hashes to {result.diff_id}, config says diff_id {diff_id}")
    return result.warnings


def _check_to_end(stream: BinaryIO) -> None:
    """Read what is left of a blob stream that checks its digest at its end, after its bytes
    failed to parse as a layer: they may not be the layer at all (tampered, cut short), and
    the digest error says so and names where they came from."""
    while stream.read(CHUNK):
        pass


def _write_image(layout: Layout, config: ImageConfig, layers: list[Descriptor], tag: str | None,
                 annotations: dict[str, str] | None = None) -> Descriptor:
    with layout.writing():
        config_desc = layout.put_json(canonical_json(config.to_dict()), MT_CONFIG)
        manifest = Manifest(config=config_desc, layers=layers, annotations=annotations or None)
        desc = layout.put_json(canonical_json(manifest.to_dict()), MT_MANIFEST)
        if tag is not None:
            layout.set_tag(tag, desc)
        return desc


def _copy_blobs(src: Source, dst: Layout, descs: list[Descriptor]) -> None:
    for d in descs:
        if not dst.has_blob(d.digest):
            with src.open_blob(d.digest, d.size, verify=False) as stream:  # put_blob checks the digest
                dst.put_blob(stream, expected=Digest.parse(d.digest))


def _target_ref(target: Layout | str | Ref, action: str) -> Layout | LayoutRef:
    """Where ``action`` writes an image: a layout given open, or the layout reference
    ``target`` (checked: LAYOUT[:TAG], not a digest, not another location)."""
    if isinstance(target, Layout):
        return target
    ref = layout_ref(target, action)
    if ref.digest:
        raise UsageError(f"{action} target {str(ref)!r}: give LAYOUT:TAG, not a digest")
    return ref


@contextlib.contextmanager
def _target(target: Layout | LayoutRef, tag: str | None) -> Iterator[tuple[Layout, str]]:
    """The layout and tag an image is written to: a layout given open (``tag``, default
    latest), or a reference's, the layout created if needed and removed again when the
    block fails before an image is named in it."""
    if isinstance(target, Layout):
        yield target, tag or DEFAULT_TAG
        return
    with destination(target.path) as layout:
        yield layout, tag or target.tag or DEFAULT_TAG


def _new_layer(blob: contextlib.AbstractContextManager, **kw: Any) -> tuple[Descriptor, str]:
    """Write a layer into ``blob`` (a layout's ``blob_writer()`` or a sink's ``new_blob()``)."""
    with blob as w:
        res = write_layer(w.hashing, **kw)
    if w.digest != res.digest:
        raise DigestMismatchError(f"layer {res.digest}: stored bytes hash to {w.digest}")
    return Descriptor(media_type=res.media_type, digest=str(res.digest), size=res.size), str(res.diff_id)


# -- pack ---------------------------------------------------------------------------------


def _base_tree(img: Image) -> LayerTree | None:
    """The tree ``img``'s layers unpack to, from their headers alone, each blob's digest and
    diffID checked on the way; None when a layer does what only extraction can tell."""
    from ..layer.layertree import LayerTree, Unmodelled

    tree = LayerTree()
    for layer, diff_id in zip(img.manifest.layers, img.config.rootfs.diff_ids):
        with img.source.open_blob(layer.digest, layer.size) as stream:
            try:
                got = tree.add_layer(stream, f"layer {layer.digest}")
            except Unmodelled:
                return None
            except LayerError:
                _check_to_end(stream)
                raise
        if str(got) != diff_id:
            raise DigestMismatchError(f"layer {layer.digest}: uncompressed content hashes to {got}, config says diff_id {diff_id}")
    return tree


def pack(
    source: Path,
    target: Layout | str | Ref,
    tag: str | None = None,
    *,
    config: ConfigChanges | None = None,
    compression: str = "gzip",
    level: int | None = None,
    platform: Platform | None = None,
    base: ImageLike | None = None,
    source_date_epoch: int | None = None,
    history_comment: str | None = None,
    progress: Progress | None = None,
    options: "RegistryOptions | None" = None,
) -> Descriptor:
    """Make ``source`` into an image in ``target`` (an open layout, with ``tag``; or a
    reference: LAYOUT[:TAG], the layout created if needed, oci-archive:FILE[:TAG], or
    docker://HOST/REPO[:TAG], reached with ``options``); return its manifest descriptor.

    Without ``base``: one layer holding all of ``source``, its environment the default
    ``PATH`` plus ``config.env``. With ``base`` (an image reference, or an opened source):
    the base image's layers plus one layer of what ``source`` changes relative to the
    base's root filesystem (known from its layers' headers, by stat). The base's layers
    are stored in the target without being read when it can take them (a registry mounts
    them from the base's repository), else streamed through. The same tree and options
    with a fixed ``created`` (or ``source_date_epoch``) give the same manifest digest.
    Everything is checked before the target is created; the tag is set last.
    """
    where = _sink_ref(target, "pack")
    source = Path(source)
    if not source.is_dir():
        if not source.exists():
            raise NotFoundError(f"{source}: no such directory")
        raise UsageError(f"{source}: not a directory")
    changes = config or ConfigChanges()
    changes.apply(ContainerConfig())  # refuse bad options before anything is made
    created = _created(changes, source_date_epoch)
    with contextlib.ExitStack() as stack:
        base_img = load_image(stack.enter_context(opened(base, options)), platform) if base is not None else None
        plat = platform or (base_img.config.platform if base_img else host_platform())
        sink = stack.enter_context(_sink(where, tag, options))
        name = tag or sink.tag or DEFAULT_TAG
        return _pack_into(source, sink, name, changes, created, base_img, plat, compression, level,
                          source_date_epoch, history_comment, progress)


def _sink_ref(target: Layout | str | Ref, action: str) -> Layout | Ref:
    """Where ``action`` writes a new image: a layout given open, or a reference to a
    layout, an OCI archive or a registry (checked: a tag, not a digest)."""
    if isinstance(target, Layout):
        return target
    ref = as_ref(target)
    if isinstance(ref, DockerArchiveRef):
        raise UsageError(f"{action} target {ref}: a docker archive holds uncompressed layers; {action} into a "
                         f"layout and copy the image there (ocikit copy ./LAYOUT:TAG {ref})")
    if ref.digest:
        raise UsageError(f"{action} target {str(ref)!r}: give a tag, not a digest")
    return ref


def _sink(where: Layout | Ref, tag: str | None, options: "RegistryOptions | None") -> Sink:
    """The sink a new image is written to, not entered yet."""
    if isinstance(where, Layout):
        return LayoutSink.into(where, tag or DEFAULT_TAG)
    return open_sink(where, options)


def _store_image(sink: Sink, config: ImageConfig, layers: list[Descriptor], tag: str,
                 annotations: dict[str, str] | None = None) -> Descriptor:
    """Store the config and the manifest (its layers are stored), then name it ``tag``."""
    data = canonical_json(config.to_dict())
    config_desc = Descriptor(media_type=MT_CONFIG, digest=str(Digest.from_bytes(data)), size=len(data))
    sink.put_blob(config_desc, io.BytesIO(data))
    data = canonical_json(Manifest(config=config_desc, layers=layers, annotations=annotations or None).to_dict())
    desc = Descriptor(media_type=MT_MANIFEST, digest=str(Digest.from_bytes(data)), size=len(data))
    sink.put_blob(desc, io.BytesIO(data))
    sink.set_tag(tag, desc)
    return desc


def _pack_into(source: Path, sink: Sink, tag: str, changes: ConfigChanges, created: str, base_img: Image | None,
               plat: Platform, compression: str, level: int | None, source_date_epoch: int | None,
               history_comment: str | None, progress: Progress | None) -> Descriptor:
    from .copy import store_blob

    with contextlib.ExitStack() as stack:
        old: Path | LayerTree | None = _base_tree(base_img) if base_img is not None else None
        if base_img is not None and old is None:
            # A layer writes through a symlink, or worse: only extraction tells (or refuses) it.
            old = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ocikit-base-")))
            for layer, diff_id in zip(base_img.manifest.layers, base_img.config.rootfs.diff_ids):
                _apply_verified(base_img.source, layer, diff_id, old)
        layer_desc, diff_id = _new_layer(sink.new_blob(), new=source, old=old, compression=compression, level=level,
                                         source_date_epoch=source_date_epoch, progress=_quiet(progress, "pack"))
    if base_img is not None:
        for layer in base_img.manifest.layers:
            store_blob(base_img.source, sink, layer)
        cc = base_img.config.config or ContainerConfig()
        history = list(base_img.config.history or [])
        diff_ids = list(base_img.config.rootfs.diff_ids)
        layers = list(base_img.manifest.layers)
    else:
        # A new image starts with the conventional PATH (as umoci and buildah give); --env adds to it.
        cc, history, diff_ids, layers = ContainerConfig(env=[DEFAULT_PATH]), [], [], []
    cc = changes.apply(cc)
    author = changes.author or (base_img.config.author if base_img else None)
    history.append(History(created=created, created_by="ocikit pack",
                           author=changes.author, comment=history_comment))
    image = ImageConfig(
        architecture=plat.architecture, os=plat.os, variant=plat.variant, os_version=plat.os_version,
        os_features=plat.os_features, created=created, author=author, config=cc,
        rootfs=RootFS(diff_ids=diff_ids + [diff_id]), history=history,
    )
    return _store_image(sink, image, layers + [layer_desc], tag)


# -- unpack -------------------------------------------------------------------------------


def unpack(
    image: ImageLike,
    bundle: Path,
    *,
    platform: Platform | None = None,
    layered: bool = False,
    store: Path | None = None,
    rootless: bool | None = None,
    tty: bool = False,
    volumes_as_mounts: bool = False,
    init_layer: bool = True,
    progress: Progress | None = None,
    options: "RegistryOptions | None" = None,
    cache: Path | None = None,
) -> UnpackResult:
    """Unpack ``image`` (a reference, or an opened source) into a new runtime bundle at ``bundle``.

    Every blob and diff_id is verified while streaming; the bundle is built in a
    temporary directory beside ``bundle`` and renamed into place only when complete.
    Layers are applied in order, each as soon as it has arrived; from a registry the next
    ones download meanwhile (``options.jobs`` transfers at once, spooled to disk).
    Flat: ``rootfs/`` holds the tree and a snapshot is kept for ``commit``. Layered:
    layers are shared in a LayerStore (one it holds is not downloaded); the bundle gets
    upper/work dirs and an empty rootfs.
    ``rootless`` (default: when not running as root): owners and device nodes are not
    applied, and config.json maps the caller to root in a user namespace.
    ``init_layer``: give the bundle its own /etc/hostname, /etc/hosts and /etc/resolv.conf
    (``oci.bundle.initlayer``); off for a runtime that provides them itself.
    ``cache``: an image layout (created if missing) that keeps the image read from a
    registry, tagged with its reference once the bundle is complete; its blobs are read
    instead of downloaded, and it stands in for a registry that cannot be reached.
    """
    if store is not None and not layered:
        raise UsageError("--store only applies with --layered")
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(opened(image, options))
        kept: CacheLayout | None = None
        if cache is not None:
            kept = stack.enter_context(CacheLayout(cache, source))
        return _unpack(source, Path(bundle).absolute(), platform, layered, store, rootless, tty, volumes_as_mounts,
                       init_layer, progress, options.jobs if options is not None else DEFAULT_JOBS, kept)


class CacheLayout:
    """The layout ``unpack --cache`` keeps a registry's image in: entered, it exists (made
    if missing, removed again if the unpack fails before it names an image); ``keep``
    stores the image's documents and tags it last, so a failed unpack tags nothing."""

    def __init__(self, path: Path, source: Source) -> None:
        if not source.remote:
            raise UsageError(f"--cache keeps an image read from a registry; {source.where} is {source.kind}")
        self.name = str(source.ref).partition("://")[2]  # HOST/REPO:TAG, a valid tag in a layout
        self._sink = LayoutSink(LayoutRef(Path(path), self.name))

    def __enter__(self) -> "CacheLayout":
        self._sink.__enter__()
        self.layout = self._sink.layout
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sink.__exit__(*exc)

    def fallback(self, exc: RegistryError, warnings: list[str]) -> LayoutSource | None:
        """The cached image, when the registry failed with ``exc`` for want of reaching it."""
        if isinstance(exc, (RegistryAuthError, RegistryNotFoundError)):
            return None
        try:
            desc = self.layout.resolve(self.name)
        except TagNotFoundError:
            return None
        warnings.append(f"{exc}; unpacking {self.name} from the cache {self.layout.root}")
        return LayoutSource(self.layout, desc)

    def keep(self, img: Image) -> None:
        """Store the manifest and config (its layers are there) and tag the image."""
        for desc in (img.manifest.config, img.desc):
            if not self.layout.has_blob(desc.digest):
                self.layout.put_blob(img.source.read_blob(desc.digest, desc.size), expected=Digest.parse(desc.digest))
        self._sink.set_tag(self.name, img.desc)


@dataclass
class UnpackResult:
    bundle: Path
    manifest: Descriptor
    config: str
    layered: bool
    layers: list[str] = field(default_factory=list)
    extracted: int = 0
    warnings: list[str] = field(default_factory=list)
    fetched: int = 0  # layer blobs read from the image's location (not the store, not the cache)


def _check_bundle_target(bundle: Path) -> None:
    if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
        raise BundleError(f"{bundle}: already exists and is not an empty directory")
    bundle.parent.mkdir(parents=True, exist_ok=True)


def _finish_bundle(tmp: Path, bundle: Path) -> None:
    if bundle.is_dir():
        bundle.rmdir()
    os.rename(tmp, bundle)
    os.chmod(bundle, 0o700)


def _load(source: Source, platform: Platform | None, warnings: list[str], cache: CacheLayout | None) -> Image:
    """The image to unpack: from ``source``, or from the cache when the registry is out of reach."""
    try:
        return load_image(source, platform, warn=warnings.append)
    except RegistryError as exc:
        kept = cache.fallback(exc, warnings) if cache is not None else None
        if kept is None:
            raise
        return load_image(kept, platform, warn=warnings.append)


def _unpack(source: Source, bundle: Path, platform: Platform | None, layered: bool, store: Path | None,
            rootless: bool | None, tty: bool, volumes_as_mounts: bool, init_layer: bool,
            progress: Progress | None, jobs: int = DEFAULT_JOBS, cache: CacheLayout | None = None) -> UnpackResult:
    from ..bundle import initlayer
    from ..bundle.convert import layers_reader, rootfs_reader, runtime_config
    from ..bundle.layerstore import LayerStore, chain_ids, default_store
    from .fetch import LayerFeed

    rootless = os.geteuid() != 0 if rootless is None else rootless
    warnings: list[str] = []
    img = _load(source, platform, warnings, cache)
    _check_bundle_target(bundle)
    layer_store: LayerStore | None = None
    chains: list[str] = []
    extracted = 0
    layer_dirs: list[Path] = []
    layers, diff_ids = img.manifest.layers, img.config.rootfs.diff_ids
    with scratch_dir(bundle, "unpack") as tmp:
        try:
            rootfs = tmp / "rootfs"
            rootfs.mkdir(mode=0o755)
            meta = BundleMeta(image=_origin(img.source, img, cache))
            if layered:
                layer_store = LayerStore(store or default_store())
                chains = chain_ids(diff_ids)
                layer_store.add_ref(str(bundle), chains, pending=str(tmp))  # before extracting: prune must not take them
                # A layer the store has is not fetched, unless the cache is to hold the whole image.
                wanted = [cache is not None or not layer_store.has_layer(chain) for chain in chains]
            else:
                wanted = [True] * len(layers)
            feed = LayerFeed(img.source, layers, wanted=wanted, jobs=jobs, spool=bundle.parent,
                             cache=cache.layout if cache is not None else None)
            with feed:
                if layered:
                    assert layer_store is not None
                    for i, (layer, diff_id, chain) in enumerate(zip(layers, diff_ids, chains)):
                        def extract(d: Path, i: int = i, layer: Descriptor = layer, diff_id: str = diff_id) -> None:
                            warnings.extend(_apply_stream(feed.open(i), layer, diff_id, d, overlay=True,
                                                          userxattr=rootless, rootless=rootless,
                                                          progress=_quiet(progress, "unpack")))
                        path, fresh = layer_store.ensure_layer(chain, extract)
                        if not fresh and cache is not None:
                            feed.store(i)  # the cache holds the whole image, extracted or not
                        extracted += fresh
                        layer_dirs.append(path)
                    for sub in ("upper", "work"):
                        (tmp / sub).mkdir(mode=0o755)
                    meta.layered, meta.layers, meta.userxattr = True, [str(p) for p in layer_dirs], rootless
                    files = layers_reader(layer_dirs, userxattr=rootless)
                else:
                    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids)):
                        warnings += _apply_stream(feed.open(i), layer, diff_id, rootfs, rootless=rootless,
                                                  progress=_quiet(progress, "unpack"))
                        extracted += 1
                    write_snapshot(rootfs, tmp / SNAPSHOT_NAME)
                    files = rootfs_reader(rootfs)
            cc = img.config.config
            if not (cc and (cc.entrypoint or cc.cmd)):
                # The runtime spec needs a process; run a shell as runc's default spec does.
                warnings.append(f"image {img.desc.digest} sets neither Entrypoint nor Cmd: config.json runs {DEFAULT_ARGS[0]!r}")
            spec = runtime_config(img.config, files, rootless=rootless, tty=tty, volumes_as_mounts=volumes_as_mounts,
                                  default_args=DEFAULT_ARGS)
            (tmp / CONFIG_NAME).write_text(json.dumps(spec, indent=2) + "\n")
            if not init_layer:
                meta.init = False
            elif layered:
                initlayer.write_layered(tmp, meta, spec)
            else:
                initlayer.write_flat(rootfs, meta, spec)  # after the snapshot: it holds the image's files
            meta.save(tmp)
            if cache is not None and img.source is source:
                cache.keep(img)  # the tag last of all the cache gets, once the bundle is whole
            _finish_bundle(tmp, bundle)
        except BaseException:
            if layer_store is not None:
                layer_store.remove_ref(str(bundle))
            raise
    return UnpackResult(bundle, img.desc, img.manifest.config.digest, layered, [str(p) for p in layer_dirs], extracted,
                        warnings, feed.fetched)


# -- commit and config --------------------------------------------------------------------


def commit(
    bundle: Path,
    target: Layout | str | Ref,
    tag: str | None = None,
    *,
    compression: str = "gzip",
    level: int | None = None,
    author: str | None = None,
    history_comment: str | None = None,
    created: str | None = None,
    source_date_epoch: int | None = None,
    progress: Progress | None = None,
) -> Descriptor:
    """Record what changed in ``bundle``'s root filesystem since unpack as a new layer
    on top of the image it came from, written to ``target`` (an open layout, with ``tag``;
    or a reference LAYOUT[:TAG], the layout created if needed). The source image is left
    as it was; the bundle then counts the committed image as its origin."""
    where = _target_ref(target, "commit")
    bundle = Path(bundle).absolute()
    if not bundle.exists():
        raise NotFoundError(f"{bundle}: no such bundle directory")
    meta = BundleMeta.load(bundle)
    if meta is None or not meta.image.get("manifest"):
        raise BundleError(f"{bundle}: not a bundle unpacked by ocikit (no ocikit-bundle.json with its image)")
    changes = ConfigChanges(created=created)
    when = _created(changes, source_date_epoch)
    with _bundle_origin(bundle, meta) as origin, _target(where, tag) as (layout, name):
        src = load_image(origin)
        with layout.writing():  # gc waits until the tag names what is written
            desc = _commit_into(bundle, meta, layout, name, src, when, compression, level, author,
                                history_comment, source_date_epoch, progress)
        meta.image = {**meta.image, **_origin(LayoutSource(layout, name), None), "manifest": desc.digest,
                      "config": jsontext.loads(layout.read_blob(desc.digest, desc.size))["config"]["digest"]}
    meta.save(bundle)
    return desc


def _origin(source: Source, img: Image | None, cache: "CacheLayout | None" = None) -> dict[str, object]:
    """What a bundle records of the image it holds: the reference to read it again (and,
    from a layout, or kept in a cache layout, the layout), its manifest and config, and the tag."""
    ref = absolute(source.ref)
    out: dict[str, object] = {"source": str(ref), "tag": source.tag}
    if isinstance(ref, LayoutRef):
        out["layout"] = str(ref.path)
    if cache is not None:
        out["layout"] = str(cache.layout.root)  # commit reads the layers there, not from the registry
    if img is not None:
        out.update(manifest=img.desc.digest, config=img.manifest.config.digest)
    return out


@contextlib.contextmanager
def _bundle_origin(bundle: Path, meta: BundleMeta) -> Iterator[Source]:
    """The image a bundle was unpacked from (or last committed as), by its manifest digest."""
    digest = str(meta.image["manifest"])
    if meta.image.get("layout"):
        layout = Layout(str(meta.image["layout"]))
        with LayoutSource(layout, ref=LayoutRef(layout.root, None, digest), owned=True) as source:
            yield source
        return
    ref = as_ref(str(meta.image.get("source") or ""))
    if isinstance(ref, OCIArchiveRef):
        ref = OCIArchiveRef(ref.path, None, digest)
    with open_source(ref) as source:
        if isinstance(ref, DockerArchiveRef) and source.resolve().digest != digest:
            raise BundleError(f"{ref}: no longer holds the image {bundle} was unpacked from (manifest {digest})")
        yield source


def _commit_into(bundle: Path, meta: BundleMeta, layout: Layout, tag: str, src: Image,
                 when: str, compression: str, level: int | None, author: str | None, history_comment: str | None,
                 source_date_epoch: int | None, progress: Progress | None) -> Descriptor:
    snapshot_path = bundle / SNAPSHOT_NAME
    if meta.layered:
        layer_desc, diff_id = _new_layer(layout.blob_writer(), new=meta.upper_dir(bundle), overlay=True, userxattr=meta.userxattr,
                                         compression=compression, level=level, source_date_epoch=source_date_epoch,
                                         progress=_quiet(progress, "commit"))
    else:
        if not snapshot_path.is_file():
            raise BundleError(f"{snapshot_path}: missing, so the changes since unpack are unknown")
        from ..bundle.initlayer import hide_from_commit

        old = hide_from_commit(bundle / "rootfs", meta, TreeSnapshot.load(snapshot_path))
        layer_desc, diff_id = _new_layer(layout.blob_writer(), new=bundle / "rootfs", old=old,
                                         compression=compression, level=level, source_date_epoch=source_date_epoch,
                                         progress=_quiet(progress, "commit"))
    _copy_blobs(src.source, layout, src.manifest.layers)
    cfg = replace(src.config, created=when, author=author or src.config.author,
                  rootfs=RootFS(diff_ids=[*src.config.rootfs.diff_ids, diff_id]),
                  history=[*(src.config.history or []),
                           History(created=when, created_by="ocikit commit", author=author, comment=history_comment)])
    desc = _write_image(layout, cfg, [*src.manifest.layers, layer_desc], tag)
    if not meta.layered:
        write_snapshot(bundle / "rootfs", snapshot_path)
    return desc


def edit_config(
    image: ImageLike,
    new_tag: str | None,
    changes: ConfigChanges,
    *,
    platform: Platform | None = None,
    history_comment: str | None = None,
    source_date_epoch: int | None = None,
) -> Descriptor:
    """Write a new config and manifest for ``image`` (in a layout: a reference, or a
    source opened on one) with ``changes`` made, into the same layout; tag it ``new_tag``
    (default: move the image's tag). Layers are shared, not copied."""
    with opened(image if isinstance(image, Source) else layout_ref(image, "config")) as source:
        if not isinstance(source, LayoutSource) or not isinstance(source.ref, LayoutRef):
            layout_ref(source.ref, "config")  # the error for any other location
        assert isinstance(source, LayoutSource)
        tag = new_tag or source.tag
        if tag is None:
            raise UsageError(f"{source.ref}: the image is named by digest; give the tag to write (--tag)")
        return _edit_config(source.layout, load_image(source, platform), tag, changes, history_comment,
                            source_date_epoch)


def _edit_config(layout: Layout, img: Image, tag: str, changes: ConfigChanges, history_comment: str | None,
                 source_date_epoch: int | None) -> Descriptor:
    when = _created(changes, source_date_epoch)
    cc = changes.apply(img.config.config or ContainerConfig())
    cfg = replace(img.config, config=cc, created=when, author=changes.author or img.config.author,
                  history=[*(img.config.history or []),
                           History(created=when, created_by="ocikit config", author=changes.author,
                                   comment=history_comment, empty_layer=True)])
    return _write_image(layout, cfg, list(img.manifest.layers), tag, img.manifest.annotations)
