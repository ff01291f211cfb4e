"""The live viewer (qtpy + pyqtgraph): it observes runs; it never owns or slows them."""
