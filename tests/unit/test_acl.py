"""ACLs: the owner-only document objstore answers, and which PutAcl bodies are equivalent."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gateway.handlers.acl import XSI, acl_document, check_owner_only
from objstore.errors import MalformedXML, NotImplementedOp

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def policy(*grants: str, owner: str = "alice") -> bytes:
    return (f'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>{owner}</ID></Owner>'
            f'<AccessControlList>{"".join(grants)}</AccessControlList></AccessControlPolicy>').encode()


def grant(grantee: str, permission: str = "FULL_CONTROL", kind: str = "CanonicalUser") -> str:
    return (f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="{kind}">{grantee}</Grantee>'
            f"<Permission>{permission}</Permission></Grant>")


def test_the_document_grants_the_owner_full_control():
    tree = ET.fromstring(acl_document("alice"))
    assert tree.tag == f"{NS}AccessControlPolicy" and tree.findtext(f"{NS}Owner/{NS}ID") == "alice"
    grants = tree.findall(f"{NS}AccessControlList/{NS}Grant")
    assert len(grants) == 1 and grants[0].findtext(f"{NS}Permission") == "FULL_CONTROL"
    assert grants[0].find(f"{NS}Grantee").get(f"{{{XSI}}}type") == "CanonicalUser"
    assert grants[0].findtext(f"{NS}Grantee/{NS}ID") == "alice"
    check_owner_only(acl_document("alice"), "alice")  # what we answer is what we accept


@pytest.mark.parametrize("body", [
    policy(grant("<ID>alice</ID>")),
    policy(grant("<ID>alice</ID><DisplayName>alice</DisplayName>"), grant("<ID>alice</ID>")),
])
def test_owner_only_full_control_is_accepted(body):
    check_owner_only(body, "alice")


@pytest.mark.parametrize("body", [
    policy(grant("<ID>alice</ID>"), grant("<URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>", "READ",
                                          "Group")),
    policy(grant("<ID>bob</ID>")),
    policy(grant("<ID>alice</ID>", "READ")),
    policy(),
    policy(grant("<ID>alice</ID>"), owner="bob"),
    policy(grant("<EmailAddress>a@example.com</EmailAddress>", kind="AmazonCustomerByEmail")),
])
def test_anything_else_is_not_implemented(body):
    with pytest.raises(NotImplementedOp):
        check_owner_only(body, "alice")


@pytest.mark.parametrize("body", [b"<AccessControlPolicy/>", b"<Other/>", b"not xml",
                                  policy("<Grant><Permission>READ</Permission></Grant>")])
def test_malformed_documents(body):
    with pytest.raises(MalformedXML):
        check_owner_only(body, "alice")
