"""Archive replay: read CloudTrail files, folders and S3 prefixes (:mod:`.readers`,
:mod:`.archive`, :mod:`.s3archive`) in event-time order, and run the matched events through the
service the Lambda runs (:mod:`.runner`).
"""
