"""The four published Helix clusters (ASPLOS'25) as instances, their published placements as plan files,
the conversion script (:mod:`instances.helix.convert`) and a generator of Helix-class clusters
(:mod:`instances.helix.generate`)."""
