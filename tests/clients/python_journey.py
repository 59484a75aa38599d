"""A sale through a Python client generated from the server's OpenAPI document
(openapi-python-client): a seller lists a discounted product with an image, an
admin verifies the seller, a buyer buys, and the image is fetched back.

Run by `.ci/generated-client`, which generates the client, starts the server and
passes its base URL and the admin's credentials. Every step checks the status and
the typed result, so a document that generates an incomplete or wrong client
fails here.
"""

import io
import struct
import sys
import uuid
import zlib

from marketplace_client import AuthenticatedClient, Client
from marketplace_client.api.admin import verify
from marketplace_client.api.auth import login, register
from marketplace_client.api.cart import add_item
from marketplace_client.api.catalog import product
from marketplace_client.api.checkout import checkout
from marketplace_client.api.operations import media
from marketplace_client.api.profile import add_address
from marketplace_client.api.seller import create_product, upload_image
from marketplace_client.models import (
    AddressInput,
    CartItemInput,
    CheckoutRequest,
    ImageUpload,
    LoginRequest,
    Money,
    NewAccount,
    NewProduct,
    PercentageDiscount,
    PercentageDiscountType,
    Problem,
    Role,
)
from marketplace_client.types import File


def png(width: int, height: int) -> bytes:
    """A real PNG: uploads are decoded, so a header alone would be refused."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes([x % 256, y % 256, 128]) for x in range(width)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def ok(response, status: int, what: str):
    if response.status_code != status or isinstance(response.parsed, Problem):
        sys.exit(f"{what}: expected {status}, got {response.status_code}: {response.content[:500]!r}")
    return response.parsed


def main() -> None:
    base, admin_email, admin_password = sys.argv[1:4]
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)

    def signed_in(email: str, password: str) -> AuthenticatedClient:
        pair = ok(login.sync_detailed(client=anonymous, body=LoginRequest(email=email, password=password)), 200, f"login {email}")
        assert pair.token_type == "Bearer" and pair.expires_in > 0
        return AuthenticatedClient(base_url=base, token=pair.access_token, raise_on_unexpected_status=True)

    run = uuid.uuid4().hex[:8]
    seller_email, buyer_email = f"seller-{run}@example.com", f"buyer-{run}@example.com"
    seller = ok(
        register.sync_detailed(
            client=anonymous,
            body=NewAccount(email=seller_email, password="seller passphrase", role=Role.SELLER, store_name=f"Lamps {run}"),
        ),
        201,
        "register seller",
    )
    assert seller.role == Role.SELLER and seller.email == seller_email
    admin = signed_in(admin_email, admin_password)
    ok(verify.sync_detailed(str(seller.id), client=admin), 200, "verify seller")

    as_seller = signed_in(seller_email, "seller passphrase")
    lamp = ok(
        create_product.sync_detailed(
            client=as_seller,
            body=NewProduct(
                title="Desk lamp",
                description="Warm light",
                price=Money(amount=4000, currency="USD"),
                stock=3,
                discount=PercentageDiscount(type_=PercentageDiscountType.PERCENTAGE, value=25),
            ),
        ),
        201,
        "create product",
    )
    assert lamp.effective_price.amount == 3000, lamp.effective_price
    assert isinstance(lamp.discount, PercentageDiscount) and lamp.discount.value == 25
    image = File(payload=io.BytesIO(png(64, 48)), file_name="lamp.png", mime_type="image/png")
    with_image = ok(upload_image.sync_detailed(str(lamp.id), client=as_seller, body=ImageUpload(image=image)), 201, "upload image")
    assert len(with_image.images) == 1 and len(with_image.thumbnails) == 1

    ok(register.sync_detailed(client=anonymous, body=NewAccount(email=buyer_email, password="buyer passphrase", role=Role.BUYER)), 201, "register buyer")
    buyer = signed_in(buyer_email, "buyer passphrase")
    home = ok(
        add_address.sync_detailed(
            client=buyer,
            body=AddressInput(name="Ada Buyer", line1="1 Main St", city="Springfield", postal_code="12345", country="US"),
        ),
        201,
        "add address",
    )
    cart = ok(add_item.sync_detailed(client=buyer, body=CartItemInput(product_id=lamp.id, quantity=2)), 200, "add to cart")
    assert cart.total.amount == 6000, cart.total
    done = ok(
        checkout.sync_detailed(client=buyer, body=CheckoutRequest(address_id=home.id), idempotency_key=f"py-{run}"),
        201,
        "checkout",
    )
    assert len(done.orders) == 1 and done.orders[0].total.amount == 6000
    assert ok(product.sync_detailed(str(lamp.id), client=anonymous), 200, "product").stock == 1

    key = with_image.images[0].split("/media/", 1)[1]
    fetched = media.sync_detailed(key, client=anonymous)
    if fetched.status_code != 200 or not fetched.content.startswith(b"\x89PNG"):
        sys.exit(f"media: {fetched.status_code} {fetched.content[:40]!r}")
    print(f"generated client journey: ok (checkout {done.checkout_id}, {len(fetched.content)} image bytes)")


if __name__ == "__main__":
    main()
