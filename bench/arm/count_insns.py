#!/usr/bin/python3
"""Executed guest instructions of a program under qemu-user, from qemu's
own logs (`-d in_asm,exec,nochain`): in_asm prints each translation block's
instructions once, exec (with chaining off) names every block each time it
runs, so the sum over executions of the block's length is the count.
Debian's qemu-user ships no TCG plugins (the `insn` plugin would count the
same thing), so this reads the log.

usage: count_insns.py QEMU PROGRAM [ARGS...]
prints: instructions, multiply-add instructions (fmla/fmadd/vfma/vmla and
kin), loads and stores, then the program's own stdout line.
"""
import re
import subprocess
import sys

FMA = re.compile(r"^(fmla|fmadd|fmls|vfma|vmla|vfms|vmls)")
MEM = re.compile(r"^(ld|st|vld|vst|ldr|str|ldp|stp|vldr|vstr|vldm|vstm|push|pop)")


def main():
    qemu, prog = sys.argv[1], sys.argv[2:]
    p = subprocess.Popen([qemu, "-d", "in_asm,exec,nochain", *prog], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace")
    blocks = {}  # start pc -> (instructions, fma, memory)
    cur, pc0, counts = None, None, [0, 0, 0]
    totals = [0, 0, 0]
    for line in p.stderr:
        if line.startswith("IN:"):
            cur, pc0 = [0, 0, 0], None
            continue
        if cur is not None:
            m = re.match(r"^0x([0-9a-f]+):\s+(.*)", line)
            if m:
                if pc0 is None:
                    pc0 = int(m.group(1), 16)
                words = m.group(2).split()
                # the encoding: one 8-digit word (A64, A32) or one or two
                # 4-digit halves (T32), then the mnemonic
                skip = 2 if len(words[0]) == 4 and re.match(r"^[0-9a-f]{4}$", words[1]) else 1
                op = words[skip] if len(words) > skip else ""
                cur[0] += 1
                cur[1] += bool(FMA.match(op))
                cur[2] += bool(MEM.match(op))
                continue
            if pc0 is not None:
                blocks[pc0] = tuple(cur)
            cur = None
        if line.startswith("Trace "):
            pc = int(line.split("[", 1)[1].split("/")[1], 16)
            b = blocks.get(pc)
            if b:
                for i in range(3):
                    totals[i] += b[i]
    out = p.stdout.read().strip()
    if p.wait() != 0:
        sys.exit(f"{prog[0]} failed")
    print(totals[0], totals[1], totals[2], out)


if __name__ == "__main__":
    main()
