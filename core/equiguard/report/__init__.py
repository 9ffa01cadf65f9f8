"""`equiguard report`: a model's equity report for owners and review panels.

Gathering (API reads, files) fills a frozen `ReportInput`; everything after is
pure: `build_content` turns it into the report's content with small cells
suppressed, and the HTML and the JSON are two renderings of that one content.
"""
