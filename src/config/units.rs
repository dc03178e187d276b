//! Durations (`"250ms"`, `"5s"`, `"1m"`) and sizes (`1024`, `"64KiB"`, `"1MiB"`).
