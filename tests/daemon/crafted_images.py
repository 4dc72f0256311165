"""Images made to cost a decoder much for little: the attack cases of the
daemon's tests, built here from PIL's output (nothing binary is shipped).

- scan_bomb: a progressive JPEG whose last scan is repeated thousands of
  times. libjpeg treats a repeated scan as a warning (a "bogus progression")
  and runs every one over the whole image, so a flat 7000x7000 picture of
  about 200 KB asked for 38 s of decoding before scans were counted.
- header_only: a baseline JPEG cut right after its scan header: the frame
  says 7071x7071 pixels, and there is no data for any of them.
"""
import io

from PIL import Image


def _segments(data):
    """(marker, start, end) for each marker segment; a scan's end includes
    its entropy-coded data."""
    out, i = [], 2  # after SOI
    while i < len(data):
        assert data[i] == 0xFF, i
        marker = data[i + 1]
        if marker == 0xD9:  # EOI
            out.append((marker, i, i + 2))
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        end = i + 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            while not (data[end] == 0xFF and data[end + 1] not in (0x00,) and
                       not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
        out.append((marker, i, end))
        i = end
    return out


def scan_bomb(width=7000, height=7000, repeats=2000):
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "JPEG", quality=75, progressive=True)
    data = buf.getvalue()
    segs = _segments(data)
    _, start, end = [s for s in segs if s[0] == 0xDA][-1]
    eoi = segs[-1][1]
    return data[:eoi] + data[start:end] * repeats + data[eoi:]


def header_only(width=7071, height=7071):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(buf, "JPEG", quality=75)
    data = bytearray(buf.getvalue())
    segs = _segments(bytes(data))
    sof = next(s for s in segs if s[0] == 0xC0)
    data[sof[1] + 5:sof[1] + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    sos = next(s for s in segs if s[0] == 0xDA)
    header_end = sos[1] + 2 + int.from_bytes(data[sos[1] + 2:sos[1] + 4], "big")
    return bytes(data[:header_end])
