"""porelab floor 1: physics. Design spec, atomistic builder, OpenMM system, run protocol, transport."""
