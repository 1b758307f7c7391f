"""moead_edge.eval"""
