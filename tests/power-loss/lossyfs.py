#!/usr/bin/python3
"""A FUSE file system that loses what was not fsynced when the power is cut.

    lossyfs.py LIVE DURABLE MOUNTPOINT

Serves LIVE at MOUNTPOINT (a pass-through). Alongside, DURABLE holds what a disk would still hold
after a power cut: a file's data reaches DURABLE only when the file is fsynced (or fdatasynced);
directory operations (create, mkdir, rename, unlink, link) reach it at once. That is kinder than
a real disk, where an unsynced directory may lose its entries too, so it finds a subset of the
faults a real power cut could: every write a program acknowledged without fsyncing it first.

Creating the file `/.lossyfs-cut-power` cuts the power: from then on every operation fails with
EIO and nothing more reaches DURABLE. The test then kills the program, unmounts, and starts the
program again on DURABLE.

Runs with Debian's python3-fusepy (module `fusepy`, libfuse 2) under /usr/bin/python3.
"""

import errno
import os
import sys
import threading

from fusepy import FUSE, FuseOSError, Operations

CUT_POWER = "/.lossyfs-cut-power"


class LossyFs(Operations):
    def __init__(self, live, durable):
        self.live = os.path.realpath(live)
        self.durable = os.path.realpath(durable)
        self.mutex = threading.Lock()
        # Per path (relative): byte ranges written since the last fsync, and whether the size
        # changed (a truncate).
        self.dirty = {}
        self.cut = False
        self.synced_bytes = 0
        self.lost_bytes = 0

    # -- helpers --------------------------------------------------------------------------------

    def _live(self, path):
        return os.path.join(self.live, path.lstrip("/"))

    def _durable(self, path):
        return os.path.join(self.durable, path.lstrip("/"))

    def _alive(self):
        if self.cut:
            raise FuseOSError(errno.EIO)

    def _mark(self, path, offset, length):
        ranges = self.dirty.setdefault(path, [])
        ranges.append((offset, length))

    def cut_power(self):
        with self.mutex:
            self.cut = True
            self.lost_bytes = sum(l for rs in self.dirty.values() for (_, l) in rs)
        sys.stderr.write(
            "lossyfs: power cut; %d bytes were synced, up to %d unsynced bytes lost\n"
            % (self.synced_bytes, self.lost_bytes)
        )
        sys.stderr.flush()

    def _sync(self, path):
        """Copies the file's unsynced ranges and size to DURABLE, and fsyncs it there."""
        ranges = self.dirty.pop(path, None)
        src = self._live(path)
        dst = self._durable(path)
        if not os.path.exists(dst):
            # Created before a rename we did not see (cannot happen) or a hard-to-model case:
            # copy the whole file.
            ranges = [(0, os.path.getsize(src))]
        size = os.path.getsize(src)
        fd_src = os.open(src, os.O_RDONLY)
        fd_dst = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for off, length in ranges or []:
                end = min(off + length, size)
                pos = off
                while pos < end:
                    chunk = os.pread(fd_src, min(1 << 20, end - pos), pos)
                    if not chunk:
                        break
                    os.pwrite(fd_dst, chunk, pos)
                    pos += len(chunk)
                    self.synced_bytes += len(chunk)
            os.ftruncate(fd_dst, size)
            os.fsync(fd_dst)
        finally:
            os.close(fd_src)
            os.close(fd_dst)

    # -- metadata -------------------------------------------------------------------------------

    def getattr(self, path, fh=None):
        self._alive()
        try:
            st = os.lstat(self._live(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        self._alive()
        return [".", ".."] + os.listdir(self._live(path))

    def statfs(self, path):
        self._alive()
        st = os.statvfs(self._live(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def chmod(self, path, mode):
        self._alive()
        os.chmod(self._live(path), mode)

    def chown(self, path, uid, gid):
        self._alive()
        os.chown(self._live(path), uid, gid)

    def utimens(self, path, times=None):
        self._alive()
        os.utime(self._live(path), times)

    def mkdir(self, path, mode):
        with self.mutex:
            self._alive()
            os.mkdir(self._live(path), mode)
            os.mkdir(self._durable(path), mode)

    def rmdir(self, path):
        with self.mutex:
            self._alive()
            os.rmdir(self._live(path))
            os.rmdir(self._durable(path))

    def unlink(self, path):
        with self.mutex:
            self._alive()
            os.unlink(self._live(path))
            try:
                os.unlink(self._durable(path))
            except FileNotFoundError:
                pass
            self.dirty.pop(path, None)

    def rename(self, old, new):
        with self.mutex:
            self._alive()
            os.rename(self._live(old), self._live(new))
            os.rename(self._durable(old), self._durable(new))
            ranges = self.dirty.pop(old, None)
            self.dirty.pop(new, None)
            if ranges is not None:
                self.dirty[new] = ranges

    def link(self, target, source):
        with self.mutex:
            self._alive()
            os.link(self._live(source), self._live(target))
            os.link(self._durable(source), self._durable(target))

    def symlink(self, name, target):
        with self.mutex:
            self._alive()
            os.symlink(target, self._live(name))
            os.symlink(target, self._durable(name))

    def readlink(self, path):
        self._alive()
        return os.readlink(self._live(path))

    # -- data -----------------------------------------------------------------------------------

    def create(self, path, mode, fi=None):
        if path == CUT_POWER:
            self.cut_power()
        with self.mutex:
            self._alive()
            fd = os.open(self._live(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)
            # The name is durable at once; its data only when synced.
            os.close(os.open(self._durable(path), os.O_WRONLY | os.O_CREAT, mode))
            return fd

    def open(self, path, flags):
        with self.mutex:
            self._alive()
            # Writes come with the kernel's offsets (the end of the file for O_APPEND).
            fd = os.open(self._live(path), flags & ~(os.O_CREAT | os.O_APPEND))
            if flags & os.O_TRUNC:
                self.dirty.setdefault(path, [])
            return fd

    def read(self, path, size, offset, fh):
        self._alive()
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        with self.mutex:
            self._alive()
            n = os.pwrite(fh, data, offset)
            self._mark(path, offset, n)
            return n

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self._alive()
            if fh is None:
                os.truncate(self._live(path), length)
            else:
                os.ftruncate(fh, length)
            self.dirty.setdefault(path, [])

    def flush(self, path, fh):
        self._alive()
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0

    def fsync(self, path, datasync, fh):
        with self.mutex:
            self._alive()
            self._sync(path)
            return 0

    def fsyncdir(self, path, datasync, fh):
        self._alive()
        return 0


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: lossyfs.py LIVE DURABLE MOUNTPOINT")
    live, durable, mountpoint = sys.argv[1:]
    fs = LossyFs(live, durable)
    FUSE(fs, mountpoint, foreground=True, nothreads=False, allow_other=False)


if __name__ == "__main__":
    main()
