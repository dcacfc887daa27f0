"""Docker's copy-up: a new, empty volume starts with the image's files at its mount path.

The source is a container's rootfs, a tree the image (and so its author) controls, read
with host privileges. So the source path is resolved inside the rootfs with
:class:`berth.container.rootpath.RootFS` (symlinks clamped to the rootfs, never out to the
host), and every file below it is opened relative to its parent's fd with ``O_NOFOLLOW``:
a symlink is copied *as* a symlink, never read through.

The copy is built in a temp dir beside ``_data`` and renamed over it. ``rename(2)`` only
replaces an *empty* directory, so a volume that got content meanwhile (another container
seeded or wrote it first) is left alone and our copy is dropped: a non-empty volume is
never overwritten, and a crash mid-copy leaves ``_data`` empty, not half-filled.
"""

from __future__ import annotations

import errno
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def seed(rootfs: str, path: str, data: str) -> bool:
    """Copy ``path`` of ``rootfs`` (files, modes, owners, times, xattrs) into empty ``data``.

    Returns whether anything was copied. A missing path, a non-directory or a path that
    leads nowhere inside the rootfs copies nothing: the runtime creates the mount point.
    """
    from ..container.rootpath import RootFS
    from ..store.fsutil import remove_tree

    if os.listdir(data):
        return False
    with RootFS(rootfs) as root:
        try:
            node = root.locate(path, follow=True)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return False
            raise
        try:
            if not node.is_dir:
                return False
            src = os.open(node.name, _DIR, dir_fd=node.pfd)
        finally:
            node.close()
    tmp = os.path.join(os.path.dirname(data), f".seed-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.mkdir(tmp, 0o700)
        dst = os.open(tmp, _DIR)
        try:
            _copy_dir(src, dst, dst, "", {})
            _metadata(src, dst, os.fstat(src))
        finally:
            os.close(dst)
        try:
            os.rename(tmp, data)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                remove_tree(tmp)
                return False  # someone filled the volume first: theirs stays
            raise
    except BaseException:
        remove_tree(tmp)
        raise
    finally:
        os.close(src)
    return True


def _copy_dir(sfd: int, dfd: int, top: int, rel: str,
              links: dict[tuple[int, int], str]) -> None:
    """Copy the entries of directory ``sfd`` into ``dfd``; ``rel`` is ``dfd`` under ``top``.

    ``links`` maps a source inode with several links to its first copy's path under
    ``top``, so hard links stay hard links.
    """
    with os.scandir(sfd) as it:
        names = [e.name for e in it]
    for name in names:
        st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        mode = st.st_mode
        path = f"{rel}/{name}" if rel else name
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dfd)
            cs = os.open(name, _DIR, dir_fd=sfd)
            try:
                cd = os.open(name, _DIR, dir_fd=dfd)
                try:
                    _copy_dir(cs, cd, top, path, links)
                    _metadata(cs, cd, st)
                finally:
                    os.close(cd)
            finally:
                os.close(cs)
            continue
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], name, src_dir_fd=top, dst_dir_fd=dfd, follow_symlinks=False)
            continue
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd,
                     follow_symlinks=False)
        elif stat.S_ISREG(mode):
            fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
            try:
                fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                               0o600, dir_fd=dfd)
                try:
                    _copy_bytes(fin, fout)
                    _metadata(fin, fout, st)
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
        else:  # device node, fifo, socket: recreated, never opened
            os.mknod(name, mode, st.st_rdev, dir_fd=dfd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dfd)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd)
        if st.st_nlink > 1:
            links[key] = path


def _copy_bytes(fin: int, fout: int) -> None:
    """In-kernel copy when the filesystems allow it, plain read/write otherwise."""
    try:
        while os.copy_file_range(fin, fout, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(fin, 0, os.SEEK_SET)
    os.lseek(fout, 0, os.SEEK_SET)
    os.ftruncate(fout, 0)
    while chunk := os.read(fin, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view):]


def _metadata(sfd: int, dfd: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), xattrs, then times (last: writes move
    mtime)."""
    os.fchown(dfd, st.st_uid, st.st_gid)
    os.fchmod(dfd, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(sfd)
    except OSError:
        names = []
    for n in names:
        try:
            os.setxattr(dfd, n, os.getxattr(sfd, n))
        except OSError:
            pass  # e.g. a security.* attribute this filesystem refuses: the data matters more
    os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
