"""Sizes fixed when the GPU kernel is compiled (plain numbers: importing this needs no GPU and no numba-cuda)."""

#: Particle-stack entries per GPU thread (local memory: 72 bytes each). A LIFO electromagnetic shower piles up the
#: secondaries of its current track: 500 GeV electrons in the CLIC ECAL need 128-160 entries (measured with
#: capacities 128-512 on 16 showers, docs/gpu-mc.md); a shower that overflows is redone on the CPU, where the stack
#: can grow.
STACK_CAPACITY = 512
