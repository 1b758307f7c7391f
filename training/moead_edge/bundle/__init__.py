"""moead_edge.bundle"""
