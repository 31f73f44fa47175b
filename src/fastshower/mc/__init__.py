"""The detailed Monte Carlo: physics processes, the transport loop and production of shower samples."""
