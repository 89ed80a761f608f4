"""The shipped Moroccan profiles and terminology are stored in the server, once."""
from ehr.content_install import install_content


async def test_content_is_installed_once_and_readable(app, client):
    written, unchanged = await install_content(app.state.engine, "http://test/fhir")
    assert written > 40 and unchanged == 0
    assert await install_content(app.state.engine, "http://test/fhir") == (0, written)
    sd = (await client.get("/StructureDefinition?url=https://fhir.sijill.ma/StructureDefinition/sijill-patient")).json()
    assert sd["total"] == 1 and sd["entry"][0]["resource"]["meta"]["versionId"] == "1"
    cin = (await client.get("/NamingSystem?value=https://fhir.sijill.ma/sid/cin")).json()
    assert cin["total"] == 1
