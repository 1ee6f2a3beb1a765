"""Extract the ELF vmlinux from an x86 bzImage, so qemu can boot it through the PVH entry point.

Usage: python3 extract_vmlinux.py BZIMAGE OUT

Booting the bzImage under TCG spends about 4 s decompressing the kernel in the guest; the ELF vmlinux
(which carries the PVH ELF note) starts at once. The compressed payload is located through the boot
protocol header (setup_sects, payload_offset, payload_length; protocol 2.08+), with a scan for known
magic numbers as a fallback, and decompressed with the standard library.
"""

import bz2
import lzma
import struct
import sys
import zlib


def unxz(data):
    return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)


def unlzma(data):
    return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)


def gunzip(data):
    """One gzip member; trailing bytes (the rest of the bzImage) are ignored, like the other decoders do."""
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


def bunzip2(data):
    return bz2.BZ2Decompressor().decompress(data)


# (name, magic, decoder); zstd, lz4 and lzo have no decoder in the standard library.
FORMATS = [
    ("xz", b"\xfd7zXZ\x00", unxz),
    ("gzip", b"\x1f\x8b\x08", gunzip),
    ("lzma", b"\x5d\x00\x00", unlzma),
    ("bzip2", b"BZh", bunzip2),
]


def header_payload(image):
    """The compressed payload named by the boot header, or None if the header is too old or odd."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        return None
    (version,) = struct.unpack_from("<H", image, 0x206)
    if version < 0x208:
        return None
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return image[start : start + length]


def candidates(image):
    """Payloads to try: the header's first, then every position where a known magic occurs."""
    payload = header_payload(image)
    if payload is not None:
        yield payload
    for fmt in FORMATS:
        magic = fmt[1]
        pos = image.find(magic)
        while pos != -1:
            yield image[pos:]
            pos = image.find(magic, pos + 1)


def extract(image):
    for payload in candidates(image):
        for name, magic, func in FORMATS:
            if not payload.startswith(magic):
                continue
            try:
                elf = func(payload)
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
                continue
            if elf.startswith(b"\x7fELF"):
                return name, elf
    raise SystemExit("extract_vmlinux: no ELF kernel found (zstd/lz4/lzo payloads are not supported)")


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    with open(argv[1], "rb") as src:
        image = src.read()
    name, elf = extract(image)
    with open(argv[2], "wb") as dst:
        dst.write(elf)
    print("extract_vmlinux: %s payload -> %s (%.1f MiB ELF)" % (name, argv[2], len(elf) / 2**20))


if __name__ == "__main__":
    main(sys.argv)
