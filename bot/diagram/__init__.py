"""Pictures of flows for staff: the graph of a flow, as Mermaid text and as an offline page.

graph.py reads a Flow into nodes and labelled edges; mermaid.py writes Mermaid flowchart
text; layout.py places any layered graph (pure geometry); page.py draws the placed graph
as inline SVG in a self-contained HTML page. Nothing here is used while the bot serves.
"""
