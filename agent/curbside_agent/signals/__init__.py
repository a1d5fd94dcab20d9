"""Where the agent learns what the car is doing: one `Reading` type, several sources of it.

Why this package exists: the rest of the agent (state, policy, interlock, status) must not
care whether the car's signals come from a JSON file a vehicle gateway rewrites, a local HTTP
endpoint, or the fleet simulator. ``reading`` defines the one value they all produce and its
JSON form (with errors that name the offending field); ``sources`` holds the
``VehicleSignals`` protocol and its three implementations.

Never waking a sleeping car is part of the protocol, not a convention: every source has a
cheap ``asleep()`` that reads only the always-on gateway's flag, and the agent calls the full
``read()`` only when that flag says the car is awake. See ``sources`` for the details.
"""
