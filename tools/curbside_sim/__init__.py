"""The fleet simulator's pure parts: who the simulated cars are and where they go.

Why this package exists: Curbside's claims (work moves within a second of a departure, zero
writes for a car that sits still, 10,000 cars on a laptop) can only be tested against a fleet
that behaves like one: commuters who leave at 07:40 give or take a few minutes, cars that
charge overnight, errands, cars that sleep for days, cars that vanish without a word. BOINC's
client emulator models on/off availability; nobody models mobility (ANCHORS §2.10).

- ``profiles``: each car's fixed habits (its archetype, battery, chargers, networks, usual
  departure time) and its trips for a given day, drawn from seeded generators keyed on
  (seed, car, day), so a car's Tuesday does not depend on which other cars exist.
- ``mobility``: ``Fleet`` turns trips into a stream of ``signals.reading.Reading`` changes
  per car (door, key and seat a few minutes before each departure, charging, sleep, network,
  battery steps) and merges them for the whole fleet on an accelerated clock.

Everything here is pure and deterministic: same seed, same traces. The process that drives
agents against a real API server with these traces lives elsewhere.
"""
