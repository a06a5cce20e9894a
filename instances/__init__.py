"""Ready instance files (``*.yaml``) and instance generators.

    from instances.zoo import zoo
    for name, data in zoo(seed=0):
        problem = placement.parse_instance(data, default_name=name)
"""
