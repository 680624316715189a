"""The tools of the shipped tool-use example (``tools.yaml``): a weather lookup and a unit conversion.

Plain Python functions, called with the model's arguments as keywords; what they return is the tool result the
model reads. The data is a fixed table, so the example runs offline and gives the same results every time."""

from __future__ import annotations

WEATHER = {
    "paris": {"city": "Paris", "celsius": 18, "sky": "cloudy"},
    "tokyo": {"city": "Tokyo", "celsius": 24, "sky": "clear"},
    "oslo": {"city": "Oslo", "celsius": 4, "sky": "snow"},
    "lima": {"city": "Lima", "celsius": 21, "sky": "overcast"},
}


def get_weather(city: str) -> dict:
    """Today's weather in ``city`` (one of a few cities); an unknown city is an error the model reads."""
    found = WEATHER.get(str(city).strip().lower())
    if found is None:
        raise KeyError(f"no weather for {city!r}; known cities: {', '.join(w['city'] for w in WEATHER.values())}")
    return found


def convert_temperature(celsius: float, unit: str = "fahrenheit") -> dict:
    """``celsius`` in ``unit`` (fahrenheit or kelvin)."""
    value = float(celsius)
    if unit.lower().startswith("f"):
        return {"fahrenheit": round(value * 9 / 5 + 32, 1)}
    if unit.lower().startswith("k"):
        return {"kelvin": round(value + 273.15, 2)}
    raise ValueError(f"unknown unit {unit!r}: fahrenheit or kelvin")
