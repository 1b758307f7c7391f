"""moead_edge.data"""
