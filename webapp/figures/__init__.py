"""Figure builders: functions that take data and return Plotly figures; pages only arrange them."""
