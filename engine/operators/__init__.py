"""Small in-memory operators the step agents are built from; none touches Kafka.

join        joins a request's arrivals from several sources (inner/outer/any, window)
tensor_map  selects a source's tensors and renames them (conditional routing)
batch       gathers ready requests into one model call (size / window)
model_call  calls a model for many requests at once and splits the results
revisits    counts step visits of a request in a cyclic pipeline
errors      what they raise (OperatorError and its kinds)
"""
