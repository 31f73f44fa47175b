"""Electromagnetic physics processes, one module per process family.

Each module offers numpy functions that tabulate cross-sections / stopping powers on the energy grid
(called once per material when the tables are built) and small numba kernels that sample the final state.
Energies in MeV, lengths in mm, inside the Monte Carlo.
"""
